import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { Identity } from './identity.js'
import type { RateLimitState } from './rate-limit.js'
import type { Blame, ErrorRunState } from './error-run.js'

/**
 * Per-socket state, in one small object, and the connection checker.
 * Everything a connection owns is released in `release()`.
 */

export type ConnectionState = 'CONNECTING' | 'OPEN' | 'CLOSING' | 'CLOSED'

/** Indexed by `WebSocket.readyState`. */
const stateNames: readonly ConnectionState[] = Object.freeze(['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'])

const OPEN = 1
const CLOSED = 3

/** What the connection checker answers. */
export interface ConnectionStatus {
  /** From the socket's real `readyState`, nothing else. */
  readonly state: ConnectionState
  /** True only when the socket is OPEN. */
  readonly connected: boolean
  /** A pong or a frame arrived within the liveness window. */
  readonly alive: boolean
  /** OPEN and the send buffer is under the high-water mark. */
  readonly writable: boolean
  readonly bufferedAmount: number
  /**
   * Milliseconds since the last pong or frame from the peer; `null` when the
   * request has no socket (a plain HTTP request), so the peer was never seen.
   */
  readonly lastSeenMs: number | null
}

/** Something waiting for the socket buffer to drain below the high-water mark. */
export interface DrainWaiter {
  resolve: (drained: boolean) => void
  timer: NodeJS.Timeout
}

/** A handler still running for this connection. */
export interface PendingHandler {
  /** Stop tracking time and fire the handler's AbortSignal. */
  cancel: (reason: unknown) => void
}

export interface ConnectionLimits {
  readonly livenessWindowMs: number
  readonly highWaterMarkBytes: number
}

export class Connection implements RateLimitState, ErrorRunState {
  readonly id: string
  readonly userId: string
  /** What `authenticate` returned (claims included). */
  readonly identity: Identity
  readonly socket: WebSocket
  readonly request: FastifyRequest
  private childLog: FastifyBaseLogger | null = null
  readonly openedAt: number
  /** Last time the peer showed life (frame or pong), ms since epoch. */
  lastSeenAt: number
  /** Last time the peer sent a frame, ms since epoch (idle timeout). */
  lastFrameAt: number
  /** Token bucket (rate-limit.ts). */
  tokens = 0
  refilledAt: number
  refusedInWindow = 0
  abuseWindowStart: number
  /** Reading is paused while too many handlers run. */
  readingPaused = false
  /** A `reconnect` frame was sent; the close follows. */
  retiring = false
  /** Frame-order error accounting (error-run.ts). */
  frameSeq = 0
  lastSuccessSeq = 0
  failures: Array<{ seq: number, blame: Blame }> | null = null
  /** The server started closing: the connection left its rooms and user list already. */
  detached = false
  /** The close code the server sent (null: none sent, or the peer closed first). */
  closeSent: number | null = null
  /** Sends waiting for the buffer to drain; null while none wait. */
  drainWaiters: DrainWaiter[] | null = null
  /** Async handlers still running; null while none run. */
  pending: Set<PendingHandler> | null = null
  readonly limits: ConnectionLimits
  private readonly requestLog: FastifyBaseLogger

  constructor (id: string, identity: Identity, socket: WebSocket, request: FastifyRequest, log: FastifyBaseLogger, limits: ConnectionLimits, burst: number) {
    this.id = id
    this.identity = identity
    this.userId = identity.userId
    this.socket = socket
    this.request = request
    this.requestLog = log
    this.limits = limits
    this.openedAt = Date.now()
    this.lastSeenAt = this.openedAt
    this.lastFrameAt = this.openedAt
    this.tokens = burst
    this.refilledAt = this.openedAt
    this.abuseWindowStart = this.openedAt
  }

  /**
   * The connection's child logger, bound to `connectionId` and `userId`.
   * Created on first use: the success path logs nothing, and a pino child
   * per idle connection costs about 1 KiB.
   */
  get log (): FastifyBaseLogger {
    if (this.childLog === null) this.childLog = this.requestLog.child({ connectionId: this.id, userId: this.userId })
    return this.childLog
  }

  get state (): ConnectionState {
    return stateNames[this.socket.readyState] as ConnectionState
  }

  get isOpen (): boolean {
    return this.socket.readyState === OPEN
  }

  /** The connection checker: a fresh status read from the socket. */
  status (now: number = Date.now()): ConnectionStatus {
    const readyState = this.socket.readyState
    const bufferedAmount = this.socket.bufferedAmount
    const connected = readyState === OPEN
    const lastSeenMs = now - this.lastSeenAt
    return {
      state: stateNames[readyState] as ConnectionState,
      connected,
      alive: connected && lastSeenMs <= this.limits.livenessWindowMs,
      writable: connected && bufferedAmount < this.limits.highWaterMarkBytes,
      bufferedAmount,
      lastSeenMs
    }
  }

  /** Handlers running for this connection. */
  get inFlight (): number {
    return this.pending === null ? 0 : this.pending.size
  }

  addPending (handler: PendingHandler): void {
    if (this.pending === null) this.pending = new Set()
    this.pending.add(handler)
  }

  deletePending (handler: PendingHandler): void {
    this.pending?.delete(handler)
  }

  /**
   * Write callback of a fan-out write (one function per connection, not per
   * write): a send waiting for drain is woken once the buffer is under the mark.
   */
  readonly writeDone = (): void => {
    if (this.drainWaiters !== null && this.socket.bufferedAmount < this.limits.highWaterMarkBytes) this.wakeDrainWaiters(true)
  }

  /** Wake every send waiting for drain; they see `drained` and re-check the socket. */
  wakeDrainWaiters (drained: boolean): void {
    const waiters = this.drainWaiters
    if (waiters === null) return
    this.drainWaiters = null
    for (const waiter of waiters) {
      clearTimeout(waiter.timer)
      waiter.resolve(drained)
    }
  }

  /**
   * Start the close handshake with `code` (or, without a code, terminate:
   * no close frame, the peer sees 1006). Records what was sent, so the
   * stats count the code the server actually sent. False when the socket
   * was no longer open.
   */
  close (code: number | null, reason: string): boolean {
    if (this.socket.readyState !== OPEN) return false
    if (code === null) {
      this.socket.terminate()
      return true
    }
    this.closeSent = code
    this.socket.close(code, reason)
    return true
  }

  /** End the socket now, whatever its state (shutdown past its grace). */
  terminate (): void {
    if (this.socket.readyState !== CLOSED) this.socket.terminate()
  }

  /** A protocol ping (liveness). */
  ping (): void {
    this.socket.ping()
  }

  /**
   * Flow control shared by handlers and JSON-RPC calls: with `maxInFlight`
   * running, stop reading rather than buffer frames without bound.
   */
  holdReadingIfFull (maxInFlight: number): void {
    if (this.inFlight >= maxInFlight && !this.readingPaused) {
      this.readingPaused = true
      this.socket.pause()
    }
  }

  /** Resume reading once a running handler or call finished under the cap. */
  resumeReadingIfRoom (maxInFlight: number): void {
    if (this.readingPaused && this.inFlight < maxInFlight) {
      this.readingPaused = false
      if (this.socket.readyState === OPEN) this.socket.resume()
    }
  }

  /** Release everything this connection owns. Called once, on close. */
  release (reason: unknown): void {
    this.wakeDrainWaiters(false)
    const pending = this.pending
    if (pending !== null) {
      this.pending = null
      for (const handler of pending) handler.cancel(reason)
    }
  }
}
