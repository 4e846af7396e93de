import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import type {} from '@fastify/websocket'
import type { Contract } from './contracts.js'
import { startRun, type AgentRun } from './client/agent.js'
import { ClientError, ClientErrorCode } from './client/errors.js'
import { Listeners } from './client/listeners.js'
import { createRequest, decodeFrame, RequestTable, systemClock, type PendingEntry, type RequestHooks } from './client/requests.js'
import type { AnyContract, EventType, Frame, PayloadArgs, RequestPayload, RequestReply, RequestType, ServerEventPayload } from './client/types.js'

/**
 * `fastify-ws-router/testing`: a client for tests over `app.injectWS`, no
 * port. It speaks like the real client (`request`, `send`, `on`,
 * `startAgent`, the same error codes) and records every frame, for
 * `expectFrame` and `expectNoFrame`. Its listeners are attached before the
 * upgrade, so `connection_established` is never missed.
 */

export interface TestClientOptions {
  /** Route path. Default `/ws`. */
  path?: string
  /** Query parameters of the upgrade request, e.g. `{ user: 'alice' }`. */
  query?: Record<string, string>
  /** Headers of the upgrade request (`authorization`, `origin`, …). */
  headers?: Record<string, string>
  /** Default timeout of `request()` and `expectFrame()`. Default 2 000 ms. */
  timeoutMs?: number
  /** Wait for `connection_established` before resolving. Default true (false for a `protocol: 'jsonrpc'` route). */
  awaitEstablished?: boolean
}

export interface TestClient<C extends Contract = AnyContract> {
  /** The `ws` socket, for raw frames and low-level checks. */
  readonly socket: WebSocket
  /** Every frame received, in order, those that answered requests included. */
  readonly frames: readonly Frame[]
  /** `connection_established`'s payload (undefined with `awaitEstablished: false`). */
  readonly established: { connectionId: string, userId: string, protocolVersion: number, heartbeatIntervalMs: number, maxPayloadBytes: number } | undefined
  readonly connectionId: string
  readonly userId: string
  /** Resolves once, with the close code and reason. */
  readonly closed: Promise<{ code: number, reason: string }>
  request: <K extends RequestType<C>>(type: K, ...args: PayloadArgs<RequestPayload<C, K>>) => Promise<RequestReply<C, K>>
  /** A frame without an id. */
  send: <K extends RequestType<C>>(type: K, ...args: PayloadArgs<RequestPayload<C, K>>) => void
  /** Any text (a JSON value is encoded), for malformed frames. */
  sendRaw: (frame: unknown) => void
  on: <K extends EventType<C>>(type: K, listener: (payload: ServerEventPayload<C, K>, frame: Frame) => void) => () => void
  startAgent: (input: string, options?: { room?: string }) => AgentRun
  /**
   * The first frame not yet taken by an `expectFrame` (already received, or
   * the next) of `type`, or satisfying `match`; rejects after `timeoutMs`
   * listing the frames seen.
   */
  expectFrame: (match: string | ((frame: Frame) => boolean), options?: { timeoutMs?: number }) => Promise<Frame>
  /** Resolves after `ms` when no untaken frame matched meanwhile; rejects at once when one does. */
  expectNoFrame: (match: string | ((frame: Frame) => boolean), ms: number) => Promise<void>
  /** Close and wait for the close to complete. */
  close: (code?: number, reason?: string) => Promise<{ code: number, reason: string }>
}

/**
 * Connect to a route of `app` (after `await app.ready()`; this calls it).
 *
 * @example
 * const client = await connectTestClient<typeof contract>(app, { query: { user: 'alice' } })
 * t.same(await client.request('echo', { text: 'hi' }), { text: 'hi' })
 */
export async function connectTestClient<C extends Contract = AnyContract> (app: FastifyInstance, options: TestClientOptions = {}): Promise<TestClient<C>> {
  await app.ready()
  const client = new InjectedClient(options, app)
  const search = options.query === undefined ? '' : `?${new URLSearchParams(options.query).toString()}`
  const socket = await app.injectWS(`${options.path ?? '/ws'}${search}`, { headers: options.headers ?? {} }, {
    onInit: (ws: WebSocket) => { client.attach(ws) }
  })
  if (options.awaitEstablished !== false) await client.expectFrame('connection_established')
  return client.ready(socket) as unknown as TestClient<C>
}

/** The type under which a frame that is not a protocol v1 envelope is recorded; its payload is the text. */
export const RAW_FRAME = '#raw'

type Matcher = (frame: Frame) => boolean

function toMatcher (match: string | Matcher): Matcher {
  return typeof match === 'string' ? (frame) => frame.type === match : match
}

class InjectedClient {
  socket!: WebSocket
  readonly frames: Frame[] = []
  established: TestClient['established']
  closed: Promise<{ code: number, reason: string }> = new Promise(() => {})
  private readonly taken = new WeakSet<Frame>()
  private readonly waiters: Array<{ match: Matcher, resolve: (frame: Frame) => void }> = []
  private readonly table = new RequestTable()
  private readonly listeners = new Listeners((err) => { queueMicrotask(() => { throw err }) })
  private readonly hooks: RequestHooks = { clock: systemClock, validate: undefined, settled: () => {} }
  private readonly timeoutMs: number

  constructor (options: TestClientOptions, private readonly app: FastifyInstance) {
    this.timeoutMs = options.timeoutMs ?? 2000
  }

  get connectionId (): string {
    return this.established?.connectionId ?? ''
  }

  get userId (): string {
    return this.established?.userId ?? ''
  }

  /** Listeners go on before the upgrade completes. */
  attach (socket: WebSocket): void {
    this.socket = socket
    socket.on('message', (data, isBinary) => {
      // A frame of another shape (a JSON-RPC response, a binary frame) is
      // recorded as it came, under the type RAW_FRAME, for expectFrame.
      const text = data.toString()
      this.onFrame((isBinary ? null : decodeFrame(text)) ?? { type: RAW_FRAME, payload: text })
    })
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.releaseServerSide(socket)
        this.table.failAll(ClientErrorCode.DISCONNECTED, `Connection closed (${code})`)
        resolve({ code, reason: reason.toString() })
      })
    })
    socket.on('error', () => {})
  }

  ready (socket: WebSocket): this {
    this.socket = socket
    return this
  }

  request (type: string, payload?: unknown, options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<unknown> {
    const { entry, promise } = createRequest(this.table, this.hooks, type, payload, options, this.timeoutMs)
    if (entry !== null) this.write(entry)
    return promise
  }

  send (type: string, payload?: unknown): void {
    this.socket.send(JSON.stringify(payload === undefined ? { type } : { type, payload }))
  }

  sendRaw (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  on (type: string, listener: (...args: never[]) => void): () => void {
    return this.listeners.on(type, listener)
  }

  startAgent (input: string, options: { room?: string } = {}): AgentRun {
    const stop = async (runId: string): Promise<void> => { await this.request('stop_agent', { runId }) }
    const { run, entry } = startRun(this.table.nextId(), input, options.room, stop)
    this.table.add(entry)
    this.write(entry)
    return run
  }

  expectFrame (match: string | Matcher, options: { timeoutMs?: number } = {}): Promise<Frame> {
    const matcher = toMatcher(match)
    const found = this.frames.find((frame) => !this.taken.has(frame) && matcher(frame))
    if (found !== undefined) {
      this.taken.add(found)
      return Promise.resolve(found)
    }
    const timeoutMs = options.timeoutMs ?? this.timeoutMs
    return new Promise((resolve, reject) => {
      const waiter = {
        match: matcher,
        resolve: (frame: Frame) => {
          clearTimeout(timer)
          resolve(frame)
        }
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        reject(new Error(`No frame ${typeof match === 'string' ? `"${match}"` : 'matching'} within ${timeoutMs} ms; received: ${this.frames.map((f) => f.type).join(', ') || 'nothing'}`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  expectNoFrame (match: string | Matcher, ms: number): Promise<void> {
    const matcher = toMatcher(match)
    const early = this.frames.find((frame) => !this.taken.has(frame) && matcher(frame))
    if (early !== undefined) return Promise.reject(new Error(`Unexpected frame: ${JSON.stringify(early)}`))
    return new Promise((resolve, reject) => {
      const waiter = {
        match: matcher,
        resolve: (frame: Frame) => {
          clearTimeout(timer)
          reject(new Error(`Unexpected frame: ${JSON.stringify(frame)}`))
        }
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1)
        resolve()
      }, ms)
      this.waiters.push(waiter)
    })
  }

  async close (code = 1000, reason = ''): Promise<{ code: number, reason: string }> {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(code, reason)
    return await this.closed
  }

  /**
   * injectWS joins the two sides with in-memory streams whose end never
   * becomes a 'close' on the server's side, so after the close handshake the
   * server would wait for it until its shutdown grace ran out. Once this side
   * has closed, destroy the server's stream of this pair: the server then
   * sees its 'close' as it would from a TCP socket.
   */
  private releaseServerSide (socket: WebSocket): void {
    const ours = (socket as unknown as { _socket?: { _readable?: unknown } })._socket?._readable
    if (ours === undefined || !this.app.hasDecorator('websocketServer')) return
    for (const peer of this.app.websocketServer.clients) {
      const stream = (peer as unknown as { _socket?: { _writable?: unknown, destroy: () => void } })._socket
      if (stream !== undefined && stream._writable === ours) stream.destroy()
    }
  }

  private write (entry: PendingEntry): void {
    if (this.socket === undefined || this.socket.readyState !== this.socket.OPEN) {
      entry.fail(new ClientError(ClientErrorCode.CLOSED, 'Test client is not connected'))
      return
    }
    this.socket.send(entry.text)
    entry.sent = true
  }

  private onFrame (frame: Frame): void {
    this.frames.push(frame)
    if (frame.type === 'connection_established' && this.established === undefined) this.established = frame.payload as TestClient['established']
    const index = this.waiters.findIndex((waiter) => waiter.match(frame))
    if (index !== -1) {
      this.taken.add(frame)
      this.waiters.splice(index, 1)[0]?.resolve(frame)
    }
    if (!this.table.deliver(frame)) this.listeners.emit(frame.type, frame.payload, frame)
  }
}
