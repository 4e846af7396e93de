/**
 * The control channel every benchmark server shares: the harness spawns the
 * server with an IPC channel and asks it, over that channel, for its own
 * `process.cpuUsage()` and `process.memoryUsage()`. Answering costs the
 * server a few microseconds, a handful of times per run.
 */
import { performance } from 'node:perf_hooks'
import { writeHeapSnapshot } from 'node:v8'
import type { ServerCommand, ServerReady, ServerReply, ServerUsage } from '../harness/messages.js'

/** What a benchmark server tells the control channel about itself. */
export interface BenchServer {
  /** TCP port it listens on (127.0.0.1). */
  readonly port: number
  /** What the server is (options applied), reported to the harness once. */
  info?: unknown
  /** Open connections, as the server itself counts them. */
  connections: () => number
  /** Anything else worth reporting (the plugin's registries). */
  stats?: () => unknown
  close: () => Promise<void>
}

declare const gc: (() => void) | undefined

async function collectGarbage (): Promise<void> {
  if (typeof gc !== 'function') throw new Error('start the server with --expose-gc')
  // Several full collections with a turn of the event loop between them, so
  // that what close callbacks and finalisers of one release goes in the next.
  for (let i = 0; i < 3; i++) {
    gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function snapshot (server: BenchServer): ServerUsage {
  return {
    cpu: process.cpuUsage(),
    memory: process.memoryUsage(),
    connections: server.connections(),
    wallMs: performance.now()
  }
}

async function handle (server: BenchServer, command: ServerCommand): Promise<ServerReply> {
  switch (command.cmd) {
    case 'usage':
      return { seq: command.seq, ok: true, usage: snapshot(server) }
    case 'gc':
      await collectGarbage()
      return { seq: command.seq, ok: true, usage: snapshot(server) }
    case 'stats':
      return { seq: command.seq, ok: true, usage: snapshot(server), stats: server.stats?.() }
    case 'snapshot':
      await collectGarbage()
      return { seq: command.seq, ok: true, usage: snapshot(server), file: writeHeapSnapshot(command.file) }
    case 'exit':
      await server.close()
      return { seq: command.seq, ok: true, usage: snapshot(server) }
  }
}

/** Hand the server to the harness: report ready, then answer its commands. */
export function control (name: string, server: BenchServer): void {
  const send = process.send?.bind(process)
  if (send === undefined) {
    console.log(`${name} listening on 127.0.0.1:${server.port} (no harness attached)`)
    return
  }
  process.on('message', (raw) => {
    const command = raw as ServerCommand
    handle(server, command).then((reply) => {
      // After `exit`, leave once the reply is out: process.exit lets --cpu-prof write its profile.
      send(reply, undefined, undefined, () => { if (command.cmd === 'exit') process.exit(0) })
    }, (err: unknown) => {
      send({ seq: command.seq, ok: false, error: String(err) })
    })
  })
  // The harness went away: do not linger.
  process.on('disconnect', () => process.exit(0))
  const ready: ServerReady = { ready: true, name, port: server.port, pid: process.pid, info: server.info }
  send(ready)
}
