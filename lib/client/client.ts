import type { Contract } from '../contracts.js'
import { startRun, type AgentRun } from './agent.js'
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js'
import { ClientError, ClientErrorCode } from './errors.js'
import { Listeners } from './listeners.js'
import { createRequest, decodeFrame, RequestTable, systemClock, type PendingEntry, type RequestHooks } from './requests.js'
import { ResumeTracker, type ResumedInfo, type ResumeFailedInfo, type SeqRange } from './resume.js'
import type {
  AnyContract, Clock, ClientValidator, EventType, Frame, PayloadArgs, RequestOptions, RequestPayload, RequestReply,
  RequestType, ServerEventPayload, WebSocketConstructor, WebSocketLike
} from './types.js'

/**
 * The client of protocol v1: one WebSocket at a time, reconnected with
 * backoff; requests matched to their answers by id; a bounded queue while
 * offline; the session resumed after a reconnect when the server offers
 * it (docs/delivery.md), else rooms joined again; liveness from the
 * server's heartbeat interval. No Node built-ins and no run-time imports
 * outside lib/client, so it bundles for browsers.
 */

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/** What came with a state change. */
export interface StateInfo {
  /** Close code of the socket that ended (1006 for one that never opened or went silent). */
  readonly code?: number
  /** Why: the close reason, `liveness timeout`, `HTTP 401`, … */
  readonly reason?: string
  /** Before `reconnecting`: the wait before the next attempt. */
  readonly delayMs?: number
  /** Before `reconnecting`: consecutive failed attempts so far. */
  readonly attempt?: number
}

/** A room the client was in, refused when it was joined again after a reconnect. */
export interface RejoinFailure {
  readonly room: string
  readonly error: ClientError
}

/** The outcome of `send()`: written now, queued for the next connection, or refused. */
export type SendOutcome =
  | { readonly ok: true, readonly queued: boolean }
  | { readonly ok: false, readonly code: typeof ClientErrorCode.QUEUE_FULL | typeof ClientErrorCode.CLOSED }

export interface ClientOptions {
  /** The WebSocket route, `wss://host/ws`. */
  url: string
  /** WebSocket implementation: default the global one (browsers, Node ≥ 22); pass `ws` on Node 20. */
  WebSocket?: WebSocketConstructor
  /** Bearer token, or a function returning one, called again before every connection attempt. */
  token?: string | (() => string | Promise<string>)
  /** Default timeout of a request. Default 10 000 ms. */
  requestTimeoutMs?: number
  /** Frames held while offline (requests and sends). Default 100. */
  queueSize?: number
  /** Reconnect delays: full jitter in [0, min(maxMs, initialMs × 2^n)). Defaults 500 ms, 30 000 ms, stable after 10 000 ms. */
  backoff?: Partial<BackoffOptions>
  /** Refused connections in a row (HTTP 401/403, close 1008) before the client gives up. Default 3. */
  maxRefusals?: number
  /** Reconnect after a lost connection. Default true. */
  reconnect?: boolean
  /**
   * Resume the session after a reconnect when the server offers it
   * (`connection_established.payload.resume`): missed frames are replayed,
   * rooms kept. `false`: every connection is a fresh session. Default true.
   */
  resume?: boolean
  /** Client-side checks of payloads, replies and events (see `contractValidator`). Default none. */
  validate?: ClientValidator
  /** Timers; tests inject a manual clock. */
  clock?: Clock
  /** Random numbers in [0, 1) for the jitter; default `Math.random`. */
  random?: () => number
}

const DEFAULTS = Object.freeze({ requestTimeoutMs: 10_000, queueSize: 100, maxRefusals: 3 })
/** The server's close code when a newer connection resumed this connection's session (docs/errors.md#close-codes). */
const SESSION_TAKEN_OVER = 4001

/** A browser may close with 1000 or 3000–4999 only; this one says "we stopped hearing the server". */
const LIVENESS_CLOSE_CODE = 4000
const OPEN = 1

interface QueuedFrame {
  readonly text: string
  readonly entry: PendingEntry | null
}

/** A typed client: request/send/on are checked against the contract `C` plus the built-ins. */
export interface Client<C extends Contract = AnyContract> {
  readonly state: ClientState
  /** `connectionId` and `userId` of the current connection, from `connection_established`. */
  readonly connectionId: string | undefined
  readonly userId: string | undefined
  /** The rooms the client is in, and will join again after a reconnect. */
  readonly rooms: ReadonlySet<string>
  /** The highest `seq` processed in the current session: 0 before any, or when the server does not number frames. */
  readonly lastSeq: number
  request: <K extends RequestType<C>>(type: K, ...args: PayloadArgs<RequestPayload<C, K>>) => Promise<RequestReply<C, K>>
  send: <K extends RequestType<C>>(type: K, ...args: PayloadArgs<RequestPayload<C, K>>) => SendOutcome
  on: {
    (type: 'state', listener: (state: ClientState, info: StateInfo) => void): () => void
    (type: 'room_rejoin_failed', listener: (failure: RejoinFailure) => void): () => void
    /** The session came back after a reconnect: its missed frames were delivered before this. */
    (type: 'resumed', listener: (info: ResumedInfo, frame: Frame) => void): () => void
    /** The server could not resume: this is a fresh session, the rooms are being joined again. */
    (type: 'resume_failed', listener: (failure: ResumeFailedInfo, frame: Frame) => void): () => void
    /** Frames of this range of `seq` will never arrive: refetch what they carried (e.g. history over HTTP). */
    (type: 'gap', listener: (range: SeqRange) => void): () => void
    <K extends EventType<C>>(type: K, listener: (payload: ServerEventPayload<C, K>, frame: Frame) => void): () => void
  }
  join: (room: string, options?: RequestOptions) => Promise<void>
  leave: (room: string, options?: RequestOptions) => Promise<void>
  startAgent: (input: string, options?: { room?: string }) => AgentRun
  /** Close for good: pending and queued requests fail with `CLOSED`. */
  close: () => void
}

/**
 * Connect to a fastify-ws-router route.
 *
 * @example
 * import type { contract } from './contract.js'
 * const client = createClient<typeof contract>({ url: 'wss://example.com/ws', token: () => getJwt() })
 * const reply = await client.request('echo', { text: 'hi' })
 */
export function createClient<C extends Contract = AnyContract> (options: ClientOptions): Client<C> {
  return new WsClient(options) as unknown as Client<C>
}

class WsClient {
  state: ClientState = 'connecting'
  connectionId: string | undefined
  userId: string | undefined
  readonly rooms = new Set<string>()
  private readonly WebSocketImpl: WebSocketConstructor
  private readonly clock: Clock
  private readonly random: () => number
  private readonly backoff: BackoffOptions
  private readonly requestTimeoutMs: number
  private readonly queueSize: number
  private readonly maxRefusals: number
  private readonly listeners = new Listeners((err) => { queueMicrotask(() => { throw err }) })
  private readonly table = new RequestTable()
  private readonly queue: QueuedFrame[] = []
  private socket: WebSocketLike | null = null
  private established = false
  private openedAt = 0
  private lastSeen = 0
  private heartbeatMs = 0
  private heartbeatTimer: unknown = null
  private retryTimer: unknown = null
  private attempt = 0
  private refusals = 0
  /** HTTP status of a refused upgrade, read from the socket's error event (`ws` reports it; browsers cannot). */
  private refusedStatus = 0
  /** From the server's `reconnect` frame: wait this long, not the backoff. */
  private serverRetryAfterMs: number | null = null
  private readonly hooks: RequestHooks
  private readonly resume: ResumeTracker
  /** Agent runs of a parked session: the server keeps them running until the session is resumed or lost. */
  private parkedRuns: PendingEntry[] = []
  private parkedRunsTimer: unknown = null

  constructor (private readonly options: ClientOptions) {
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (WebSocketImpl === undefined) throw new TypeError('No global WebSocket: pass one, e.g. createClient({ url, WebSocket }) with `import WebSocket from \'ws\'`')
    this.WebSocketImpl = WebSocketImpl
    this.clock = options.clock ?? systemClock
    this.random = options.random ?? Math.random
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff }
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs
    this.queueSize = options.queueSize ?? DEFAULTS.queueSize
    this.maxRefusals = options.maxRefusals ?? DEFAULTS.maxRefusals
    this.resume = new ResumeTracker(options.resume !== false)
    this.hooks = {
      clock: this.clock,
      validate: options.validate,
      settled: (entry: PendingEntry) => { this.unqueue(entry) },
      replied: (type: string, payload: unknown) => { this.trackRoom(type, payload) }
    }
    // After the caller's synchronous code, so listeners it adds right after
    // createClient() see every state change, even of a first attempt that fails at once.
    queueMicrotask(() => { if (this.state !== 'closed') this.startAttempt() })
  }

  get lastSeq (): number {
    return this.resume.processedSeq
  }

  request (type: string, payload?: unknown, options: RequestOptions = {}): Promise<unknown> {
    if (this.state === 'closed') return Promise.reject(new ClientError(ClientErrorCode.CLOSED, 'Client is closed'))
    const problem = this.options.validate?.('payload', type, payload)
    if (problem !== undefined) return Promise.reject(new ClientError(ClientErrorCode.INVALID_PAYLOAD, `Payload of "${type}" does not match its schema: ${problem}`))
    if (this.queueIsFull()) {
      return Promise.reject(new ClientError(ClientErrorCode.QUEUE_FULL, `Offline and the queue holds ${this.queueSize} frames`))
    }
    const { entry, promise } = createRequest(this.table, this.hooks, type, payload, options, this.requestTimeoutMs)
    if (entry !== null) this.transmit(entry.text, entry)
    return promise
  }

  send (type: string, payload?: unknown): SendOutcome {
    if (this.state === 'closed') return { ok: false, code: ClientErrorCode.CLOSED }
    const text = JSON.stringify(payload === undefined ? { type } : { type, payload })
    if (this.queueIsFull()) return { ok: false, code: ClientErrorCode.QUEUE_FULL }
    return { ok: true, queued: !this.transmit(text, null) }
  }

  on (type: string, listener: (...args: never[]) => void): () => void {
    return this.listeners.on(type, listener)
  }

  async join (room: string, options?: RequestOptions): Promise<void> {
    await this.request('join', { room }, options)
  }

  async leave (room: string, options?: RequestOptions): Promise<void> {
    await this.request('leave', { room }, options)
  }

  startAgent (input: string, options: { room?: string } = {}): AgentRun {
    const stop = async (runId: string): Promise<void> => { await this.request('stop_agent', { runId }) }
    const { run, entry } = startRun(this.table.nextId(), input, options.room, stop, (failed) => { this.unqueue(failed) })
    if (this.state === 'closed') {
      run.fail(new ClientError(ClientErrorCode.CLOSED, 'Client is closed'))
    } else if (this.queueIsFull()) {
      run.fail(new ClientError(ClientErrorCode.QUEUE_FULL, `Offline and the queue holds ${this.queueSize} frames`))
    } else {
      this.table.add(entry)
      this.transmit(entry.text, entry)
    }
    return run
  }

  close (): void {
    if (this.state === 'closed') return
    const socket = this.socket
    this.shutdown({ code: 1000, reason: 'client closed' })
    socket?.close(1000, 'client closed')
  }

  /** A connection that takes frames now: established, and its socket not closing. */
  private writable (): boolean {
    return this.established && this.socket !== null && this.socket.readyState === OPEN
  }

  /** A new frame would have to wait, and the queue has no room for it. */
  private queueIsFull (): boolean {
    return !this.writable() && this.queue.length >= this.queueSize
  }

  /** Write now when open, else queue (the caller checked the bound). `true` when written. */
  private transmit (text: string, entry: PendingEntry | null): boolean {
    const socket = this.socket
    if (socket !== null && this.writable()) {
      socket.send(text)
      if (entry !== null) entry.sent = true
      return true
    }
    this.queue.push({ text, entry })
    return false
  }

  private unqueue (entry: PendingEntry): void {
    if (entry.sent) return
    const index = this.queue.findIndex((queued) => queued.entry === entry)
    if (index !== -1) this.queue.splice(index, 1)
  }

  private startAttempt (): void {
    // connect() catches what it expects; anything else ends the client, reported in `closed`.
    this.connect().catch((err: Error) => { this.shutdown({ code: 1006, reason: err.message }) })
  }

  private async connect (): Promise<void> {
    this.retryTimer = null
    let token: string | undefined
    try {
      token = typeof this.options.token === 'function' ? await this.options.token() : this.options.token
    } catch (err) {
      if (this.state === 'closed') return
      this.scheduleReconnect({ code: 1006, reason: `token: ${(err as Error).message}` }, false)
      return
    }
    if (this.state === 'closed') return
    let socket: WebSocketLike
    const url = this.resume.url(this.options.url)
    try {
      socket = (token === undefined ? new this.WebSocketImpl(url) : new this.WebSocketImpl(url, ['bearer', token])) as WebSocketLike
    } catch (err) {
      // A malformed URL: no attempt will ever succeed.
      this.shutdown({ code: 1006, reason: (err as Error).message })
      return
    }
    this.socket = socket
    this.refusedStatus = 0
    socket.onmessage = (event) => { if (this.socket === socket) this.onFrame(event.data) }
    socket.onerror = (event) => {
      const status = /Unexpected server response: (\d{3})/.exec(String((event as { message?: unknown }).message))
      if (status !== null) this.refusedStatus = Number(status[1])
    }
    socket.onclose = (event) => { if (this.socket === socket) this.onSocketEnd(event.code, event.reason) }
  }

  private onFrame (data: unknown): void {
    this.lastSeen = this.clock.now()
    const frame = decodeFrame(data)
    if (frame === null) return
    if (typeof frame.seq === 'number') {
      const verdict = this.resume.accept(frame.seq)
      // Processed already: a replay overlapping live delivery.
      if (verdict.duplicate) return
      if (verdict.gap !== null) this.listeners.emit('gap', verdict.gap)
    }
    if (frame.type === 'connection_established' && frame.id === undefined) this.onEstablished(frame)
    else if (frame.type === 'resumed' && frame.id === undefined) {
      const lost = this.resume.resumed(frame.payload as ResumedInfo | undefined)
      if (lost !== null) this.listeners.emit('gap', lost)
    } else if (frame.type === 'reconnect' && frame.id === undefined) {
      const retryAfterMs = (frame.payload as { retryAfterMs?: unknown } | undefined)?.retryAfterMs
      this.serverRetryAfterMs = typeof retryAfterMs === 'number' && retryAfterMs >= 0 ? Math.min(retryAfterMs, this.backoff.maxMs) : 0
    }
    if (this.table.deliver(frame)) return
    const problem = this.options.validate?.('event', frame.type, frame.payload)
    if (problem !== undefined) {
      this.listeners.emit('invalid_event', new ClientError(ClientErrorCode.INVALID_PAYLOAD, `Event "${frame.type}" does not match its schema: ${problem}`), frame)
      return
    }
    this.listeners.emit(frame.type, frame.payload, frame)
  }

  private onEstablished (frame: Frame): void {
    const payload = (frame.payload ?? {}) as { connectionId?: string, userId?: string, heartbeatIntervalMs?: number, resume?: unknown }
    const outcome = this.resume.established(payload.connectionId, payload.resume)
    this.connectionId = payload.connectionId
    this.userId = payload.userId
    this.established = true
    this.openedAt = this.clock.now()
    this.heartbeatMs = typeof payload.heartbeatIntervalMs === 'number' && payload.heartbeatIntervalMs > 0 ? payload.heartbeatIntervalMs : 0
    this.scheduleHeartbeat()
    this.setState('open', {})
    if (outcome === 'resumed') {
      // The server restored the rooms and keeps the runs going; frames sent
      // before its `resumed` are answered after the replay.
      this.unparkRuns(null)
    } else {
      this.unparkRuns(new ClientError(ClientErrorCode.DISCONNECTED, 'Connection lost and the session could not be resumed'))
      this.rejoin()
    }
    const queued = this.queue.splice(0)
    for (const item of queued) this.transmit(item.text, item.entry)
  }

  /** Join the rooms again (before the queue is flushed, so queued frames find them joined). */
  private rejoin (): void {
    for (const room of [...this.rooms]) {
      this.request('join', { room }).catch((err: ClientError) => {
        // Lost again before the answer: the next connection tries again.
        if (err.code === ClientErrorCode.DISCONNECTED || err.code === ClientErrorCode.CLOSED) return
        this.rooms.delete(room)
        this.listeners.emit('room_rejoin_failed', { room, error: err })
      })
    }
  }

  private trackRoom (type: string, payload: unknown): void {
    const room = (payload as { room?: unknown } | undefined)?.room
    if (typeof room !== 'string') return
    if (type === 'join') this.rooms.add(room)
    else if (type === 'leave') this.rooms.delete(room)
  }

  /**
   * One timer: every half interval, ping when the server has been quiet
   * for half an interval; declare it dead when quiet for 1.5 intervals, so
   * a silent server is noticed within two intervals of its last frame.
   */
  private scheduleHeartbeat (): void {
    if (this.heartbeatMs === 0) return
    this.heartbeatTimer = this.clock.setTimeout(() => { this.heartbeat() }, this.heartbeatMs / 2)
  }

  private heartbeat (): void {
    this.heartbeatTimer = null
    const socket = this.socket
    if (socket === null || !this.established) return
    const silentMs = this.clock.now() - this.lastSeen
    if (silentMs >= this.heartbeatMs * 1.5) {
      // Half-open: the close handshake would wait on a peer that is gone.
      this.socket = null
      socket.onmessage = null
      socket.onclose = null
      socket.close(LIVENESS_CLOSE_CODE, 'liveness timeout')
      const terminate = (socket as { terminate?: () => void }).terminate
      if (typeof terminate === 'function') terminate.call(socket)
      this.onSocketEnd(1006, 'liveness timeout')
      return
    }
    if (silentMs >= this.heartbeatMs / 2 && socket.readyState === OPEN) socket.send('{"type":"ping"}')
    this.scheduleHeartbeat()
  }

  /** The socket ended: settle what was in flight, then reconnect or give up. */
  private onSocketEnd (code: number, reason: string): void {
    this.socket = null
    const wasEstablished = this.established
    this.established = false
    if (this.heartbeatTimer !== null) this.clock.clearTimeout(this.heartbeatTimer)
    this.heartbeatTimer = null
    if (this.state === 'closed') return
    const resend: QueuedFrame[] = []
    // Replies are not replayed, but a run's events are: the run waits for the resume.
    const parkRuns = this.resume.resumable && this.options.reconnect !== false && code !== 1000 && code !== SESSION_TAKEN_OVER
    for (const entry of this.table.takeSent()) {
      if (parkRuns && entry.resumable === true) {
        // Still sent (to the session): an attempt that fails before it is established finds it here again.
        if (!this.parkedRuns.includes(entry)) this.parkedRuns.push(entry)
        continue
      }
      entry.sent = false
      if (entry.idempotent) resend.push({ text: entry.text, entry })
      else {
        this.table.remove(entry.id)
        entry.fail(new ClientError(ClientErrorCode.DISCONNECTED, `Connection lost before the answer to "${entry.type}" (close ${code})`))
      }
    }
    if (this.parkedRuns.length > 0 && this.parkedRunsTimer === null) {
      // After the window the server has dropped the session: the runs cannot come back.
      this.parkedRunsTimer = this.clock.setTimeout(() => {
        this.parkedRunsTimer = null
        this.unparkRuns(new ClientError(ClientErrorCode.DISCONNECTED, `Connection lost and not resumed within ${this.resume.windowMs} ms`))
      }, this.resume.windowMs)
    }
    this.queue.unshift(...resend)
    const refused = this.refusedStatus === 401 || this.refusedStatus === 403 || code === 1008
    const info = { code, reason: this.refusedStatus !== 0 ? `HTTP ${this.refusedStatus}` : reason }
    // Refusals count in a row: any other end of a connection starts over.
    if (!refused) this.refusals = 0
    else {
      this.refusals += 1
      if (this.refusals >= this.maxRefusals) {
        this.shutdown({ ...info, reason: `refused ${this.refusals} times in a row, last: ${info.reason}` })
        return
      }
    }
    // 4001: a newer connection resumed this session; reconnecting would take it back, and so on.
    if (this.options.reconnect === false || (code === 1000 && wasEstablished) || code === SESSION_TAKEN_OVER) {
      this.shutdown(info)
      return
    }
    if (wasEstablished && this.clock.now() - this.openedAt >= this.backoff.stableAfterMs) this.attempt = 0
    this.scheduleReconnect(info, wasEstablished)
  }

  private scheduleReconnect (info: StateInfo, wasEstablished: boolean): void {
    let delayMs: number
    if (this.serverRetryAfterMs !== null && wasEstablished) {
      delayMs = this.serverRetryAfterMs
    } else {
      delayMs = backoffDelay(this.backoff, this.attempt, this.random)
      this.attempt += 1
    }
    this.serverRetryAfterMs = null
    this.setState('reconnecting', { ...info, delayMs, attempt: this.attempt })
    this.retryTimer = this.clock.setTimeout(() => { this.startAttempt() }, delayMs)
  }

  /** Keep the parked runs (`error === null`: the session was resumed) or fail them. */
  private unparkRuns (error: ClientError | null): void {
    if (this.parkedRunsTimer !== null) this.clock.clearTimeout(this.parkedRunsTimer)
    this.parkedRunsTimer = null
    const parked = this.parkedRuns
    this.parkedRuns = []
    if (error === null) return
    for (const entry of parked) {
      entry.sent = false
      this.table.remove(entry.id)
      entry.fail(error)
    }
  }

  private shutdown (info: StateInfo): void {
    this.established = false
    this.socket = null
    if (this.heartbeatTimer !== null) this.clock.clearTimeout(this.heartbeatTimer)
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer)
    if (this.parkedRunsTimer !== null) this.clock.clearTimeout(this.parkedRunsTimer)
    this.heartbeatTimer = null
    this.retryTimer = null
    this.parkedRunsTimer = null
    this.parkedRuns = []
    this.setState('closed', info)
    this.queue.length = 0
    this.table.failAll(ClientErrorCode.CLOSED, `Client closed: ${info.reason ?? ''}`.trim())
  }

  private setState (state: ClientState, info: StateInfo): void {
    this.state = state
    this.listeners.emit('state', state, info)
  }
}
