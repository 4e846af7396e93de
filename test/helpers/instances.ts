import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { TestClient } from './client.js'
import { untrackedNode } from './child-env.js'

/**
 * Server instances for the scale-out tests, each its own process running
 * test/fixtures/instance.ts (configured through the environment).
 */

export interface Instance {
  url: string
  http: string
  proc: ChildProcess
  /** The instance's log lines so far (pino JSON on its stdout). */
  logs: () => string[]
  stop: () => Promise<void>
}

const fixture = fileURLToPath(new URL('../fixtures/instance.ts', import.meta.url))

/** `file`: another instance script (the benchmarks' own), default test/fixtures/instance.ts. */
export async function spawnInstance (env: Record<string, string>, file = fixture): Promise<Instance> {
  const child = untrackedNode(['--import', 'tsx', file], env)
  const proc = spawn(child.command, child.args, {
    env: child.env,
    stdio: ['ignore', 'pipe', 'inherit']
  })
  let output = ''
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const line = output.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port)
    })
    proc.once('exit', (code) => reject(new Error(`instance exited early (${code})`)))
  })
  return {
    logs: () => output.split('\n').filter((line) => line.startsWith('{"level"')),
    url: `ws://127.0.0.1:${port}/ws`,
    http: `http://127.0.0.1:${port}`,
    proc,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return
      proc.kill('SIGTERM')
      await once(proc, 'exit')
    }
  }
}

export async function getJson<T> (url: string): Promise<T> {
  const response = await fetch(url)
  return await response.json() as T
}

export async function inRoom (client: TestClient, room: string): Promise<void> {
  const id = `join-${room}-${Math.random()}`
  client.send({ type: 'join', id, payload: { room } })
  await client.next((f) => f.id === id)
}
