import { EventEmitter } from 'node:events'
import Fastify, { type FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { buildConfig } from '../../lib/options.js'
import { WsRouter } from '../../lib/router.js'
import type { WsRouterOptions } from '../../lib/index.js'
import { logSink, type LogLine } from './server.js'
import { kEngine } from '../../lib/symbols.js'

/**
 * Just enough of a ws WebSocket for unit tests of the connection part:
 * every write, close and pause is recorded; `bufferedAmount` is set by the
 * test; a write's callback runs at once unless `holdWrites` is set.
 */
export class StubSocket extends EventEmitter {
  readyState = 1
  bufferedAmount = 0
  readonly OPEN = 1
  readonly sent: string[] = []
  readonly closes: Array<{ code: number | undefined, reason: string | undefined }> = []
  terminated = false
  paused = false
  pings = 0
  holdWrites = false
  readonly heldCallbacks: Array<(err?: Error) => void> = []

  send (text: string, cb?: (err?: Error) => void): void {
    this.sent.push(text)
    if (cb === undefined) return
    if (this.holdWrites) this.heldCallbacks.push(cb)
    else cb()
  }

  close (code?: number, reason?: string): void {
    this.closes.push({ code, reason })
    this.readyState = 2
  }

  terminate (): void {
    this.terminated = true
    this.readyState = 2
  }

  pause (): void { this.paused = true }
  resume (): void { this.paused = false }
  ping (): void { this.pings++ }

  /** The peer finished the close: ws emits `close` with the code it saw. */
  finishClose (code: number): void {
    this.readyState = 3
    this.emit('close', code, Buffer.alloc(0))
  }

  frames (): Array<{ type: string, id?: unknown, payload?: any }> {
    return this.sent.map((text) => JSON.parse(text))
  }
}

/** A router on stub sockets, with its log lines. */
export function stubRouter (options: WsRouterOptions = {}): { router: WsRouter, logs: LogLine[], open: (userId?: string) => { socket: StubSocket, id: string } } {
  const sink = logSink()
  // Fastify's own logger (pino), writing JSON lines to the sink.
  const log = Fastify({ logger: { level: 'info', stream: sink.stream } }).log
  const router = new WsRouter(buildConfig({ environment: 'test', ...options }), log)
  router[kEngine].lock()
  const open = (userId = 'u'): { socket: StubSocket, id: string } => {
    const socket = new StubSocket()
    const request = { log } as unknown as FastifyRequest
    const conn = router[kEngine].accept(socket as unknown as WebSocket, request, { userId })
    return { socket, id: conn.id }
  }
  return { router, logs: sink.lines, open }
}
