/**
 * Benchmark servers as child processes: one per server, each pinned to the
 * server core when `taskset` is there, each with `--expose-gc`, each
 * answering for its own CPU and memory over the IPC channel.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerCommand, ServerReady, ServerReply, ServerUsage } from './messages.js'

export type ServerName = 'raw-ws' | 'handwritten' | 'socketio' | 'plugin' | 'plugin-chat' | 'plugin-lifecycle' | 'plugin-baseline'

export interface LaunchOptions {
  /** Core list for `taskset -c`, or null to leave the scheduler free. */
  cores: string | null
  /** Write a V8 CPU profile into this directory when the server exits. */
  cpuProfileDir?: string | undefined
  /** Append the server's stdout (its JSON log lines) to this file. */
  logFile: string
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

export class ServerProcess {
  readonly name: ServerName
  readonly port: number
  readonly pid: number
  /** What the server reported about itself (the plugin: options applied and not known). */
  readonly info: unknown
  private readonly child: ChildProcess
  private readonly pending = new Map<number, (reply: ServerReply) => void>()
  private seq = 0
  private exited = false

  private constructor (name: ServerName, child: ChildProcess, ready: ServerReady) {
    this.name = name
    this.child = child
    this.port = ready.port
    this.pid = ready.pid
    this.info = ready.info
    child.on('message', (message: ServerReply) => {
      const done = this.pending.get(message.seq)
      if (done === undefined) return
      this.pending.delete(message.seq)
      done(message)
    })
    child.on('exit', () => {
      this.exited = true
      for (const done of this.pending.values()) done({ seq: -1, ok: false, error: `${name} exited` })
      this.pending.clear()
    })
  }

  static async start (name: ServerName, options: LaunchOptions): Promise<ServerProcess> {
    const nodeArgs = ['--import', 'tsx', '--expose-gc']
    if (options.cpuProfileDir !== undefined) {
      // One directory per server; V8 names each file by pid and thread (the
      // main thread's profile is the large one, tsx's loader thread has its own).
      const dir = `${options.cpuProfileDir}/${name}`
      mkdirSync(dir, { recursive: true })
      nodeArgs.push('--cpu-prof', '--cpu-prof-dir', dir)
    }
    const command = [process.execPath, ...nodeArgs, `bench/servers/${name}.ts`]
    if (options.cores !== null) command.unshift('taskset', '-c', options.cores)
    // Raise the soft file-descriptor limit to the hard one for the server
    // (5 000 idle connections need 5 000 descriptors), then exec it.
    mkdirSync(dirname(options.logFile), { recursive: true })
    const log = openSync(options.logFile, 'a')
    const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"', 'sh', ...command], {
      cwd: repoRoot,
      stdio: ['ignore', log, 'inherit', 'ipc']
    })
    closeSync(log)
    const ready = await new Promise<ServerReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s`)), 60_000)
      child.once('message', (message: ServerReady) => {
        clearTimeout(timer)
        resolve(message)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`${name} exited with ${code} before it was ready`))
      })
    })
    return new ServerProcess(name, child, ready)
  }

  private request (command: ServerCommand extends infer C ? C extends ServerCommand ? Omit<C, 'seq'> : never : never): Promise<ServerReply> {
    if (this.exited) return Promise.reject(new Error(`${this.name} has exited`))
    const seq = ++this.seq
    return new Promise((resolve, reject) => {
      this.pending.set(seq, (reply) => {
        if (reply.ok) resolve(reply)
        else reject(new Error(`${this.name}: ${reply.error ?? 'failed'}`))
      })
      this.child.send({ ...command, seq })
    })
  }

  async usage (): Promise<ServerUsage> {
    return (await this.request({ cmd: 'usage' })).usage as ServerUsage
  }

  /** Full garbage collection in the server, then its usage. */
  async gc (): Promise<ServerUsage> {
    return (await this.request({ cmd: 'gc' })).usage as ServerUsage
  }

  /** Full garbage collection, then a V8 heap snapshot written to `file`. */
  async heapSnapshot (file: string): Promise<ServerUsage> {
    return (await this.request({ cmd: 'snapshot', file })).usage as ServerUsage
  }

  async stats (): Promise<{ usage: ServerUsage, stats: unknown }> {
    const reply = await this.request({ cmd: 'stats' })
    return { usage: reply.usage as ServerUsage, stats: reply.stats }
  }

  /** Close the server and let the process exit (its CPU profile, if any, is written then). */
  async stop (): Promise<void> {
    if (this.exited) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    try {
      await this.request({ cmd: 'exit' })
    } catch {
      // exited already
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
}
