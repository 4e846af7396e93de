import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Connection, ConnectionStatus } from './connection.js'
import type { Identity } from './identity.js'
import type { MessageId } from './envelope.js'
import type { SchemaCheck } from './schema.js'
import type { TypeCounters } from './stats.js'
import { failure, type SendFailed, type SendOptions, type SendResult } from './send.js'
import { SendFailure } from './errors.js'
import type { PipelineObserver } from './observer.js'

/**
 * Told how one envelope ended: used by `batch` to build its result. The
 * ordinary frame path passes none, so it allocates nothing for it.
 */
export interface OutcomeSink {
  settle: (ok: boolean, code?: string, message?: string) => void
}

const ALREADY_ANSWERED = failure(SendFailure.ALREADY_ANSWERED)

/**
 * What a context and its answer need of the frame's route (a registry
 * `Route` is one); declared here so the context does not import the
 * registry, which imports the context for its handler type.
 */
export interface ContextRoute {
  readonly type: string
  readonly replyType: string
  readonly replyCheck: SchemaCheck | null
  readonly timeoutMs: number
  readonly droppable: boolean
  readonly counters: TypeCounters
}

/** What a context needs from the router that owns it. */
export interface ContextHost {
  sendFrame: (conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions) => Promise<SendResult>
  /** Count and log a send refused before reaching the socket (a second reply, say). */
  reportSendFailure: (conn: Connection, type: string, id: MessageId | undefined, result: SendFailed) => SendResult
  /** Called by the deadline sweeper when the handler ran out of time. */
  handlerTimedOut: (ctx: HandlerContext<unknown>) => void
  /** Called when the handler stops being tracked (settled, timed out or cancelled). */
  handlerReleased: (ctx: HandlerContext<unknown>) => void
  /** Told how long each handler took; null when nothing observes. */
  readonly observer: PipelineObserver | null
}

export interface OutboundOptions extends SendOptions {
  /** Route whose reply schema the payload must satisfy. */
  readonly route?: ContextRoute
  /** @internal resume (issue 12): number this frame although it carries an id (agent events). */
  readonly numbered?: boolean
}

/**
 * The second argument of every handler. One is created per handled frame;
 * its AbortSignal is created only when a handler asks for it. While an
 * async handler runs, the context is also its deadline entry and its
 * pending-handler entry on the connection (no extra objects per frame).
 */
// Also the frame's Deadline and PendingHandler entry, structurally: those
// members are internal and stripped from the published types.
export class HandlerContext<Reply = unknown> {
  /** The frame's `id`, if it had one. */
  readonly id: MessageId | undefined
  /** The frame's `type`. */
  readonly type: string
  /** @internal */
  readonly conn: Connection
  /** @internal */
  readonly route: ContextRoute
  /** @internal true once a reply was sent (or attempted) through `reply()`. */
  replied = false
  /** @internal true once the router has answered for this frame (done, failed or timed out). */
  finished = false
  /** @internal the send started by `reply()`, awaited before the frame counts as handled. */
  pendingReply: Promise<SendResult> | null = null
  /** @internal deadline of an async handler, ms since epoch. */
  deadline = 0
  /** @internal `performance.now()` when the handler was called; 0 when nothing observes. */
  startedAt = 0
  /** @internal arrival number of the frame (frame-order error accounting). */
  readonly seq: number
  /** @internal told the outcome (batch items only). */
  sink: OutcomeSink | undefined = undefined
  private readonly host: ContextHost
  private controller: AbortController | null = null

  constructor (host: ContextHost, conn: Connection, route: ContextRoute, id: MessageId | undefined, seq: number) {
    this.host = host
    this.seq = seq
    this.conn = conn
    this.route = route
    this.id = id
    this.type = route.type
  }

  get connectionId (): string {
    return this.conn.id
  }

  get userId (): string {
    return this.conn.userId
  }

  get request (): FastifyRequest {
    return this.conn.request
  }

  /** What `authenticate` returned for this connection: `userId` and any claims. */
  get identity (): Readonly<Identity> {
    return this.conn.identity
  }

  /** The connection's child logger (bound to `connectionId` and `userId`). */
  get log (): FastifyBaseLogger {
    return this.conn.log
  }

  /** Fires on handler timeout or when the connection closes. */
  get signal (): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.finished) this.controller.abort(new Error('handler already finished'))
    }
    return this.controller.signal
  }

  /** The connection checker for this handler's connection. */
  status (): ConnectionStatus {
    return this.conn.status()
  }

  /** Send a frame of any type to this connection (no id). */
  send (type: string, payload?: unknown, options?: SendOptions): Promise<SendResult> {
    return this.host.sendFrame(this.conn, type, undefined, payload, options)
  }

  /**
   * Send the reply now, with the request's id. Once per frame, and only
   * while the handler is still in time: otherwise `ALREADY_ANSWERED`.
   * After `reply()`, the handler's return value is not sent.
   */
  reply (payload: Reply): Promise<SendResult> {
    // One answer per frame: not a second reply, not a reply after the router
    // answered for the handler (timeout, error).
    if (this.replied || this.finished) {
      return Promise.resolve(this.host.reportSendFailure(this.conn, this.route.replyType, this.id, ALREADY_ANSWERED))
    }
    this.replied = true
    const sent = this.host.sendFrame(this.conn, this.route.replyType, this.id, payload, { route: this.route, droppable: this.route.droppable })
    this.pendingReply = sent
    return sent
  }

  /** @internal Mark the frame answered; returns false if it already was. */
  finish (): boolean {
    if (this.finished) return false
    this.finished = true
    if (this.deadline !== 0) this.host.handlerReleased(this as HandlerContext<unknown>)
    if (this.startedAt !== 0) this.host.observer?.handlerSettled(this.type, this.startedAt)
    return true
  }

  /** @internal Deadline: the sweeper found this handler past its time. */
  expire (): void {
    this.host.handlerTimedOut(this as HandlerContext<unknown>)
  }

  /** @internal PendingHandler: the connection closed while the handler ran. */
  cancel (reason: unknown): void {
    if (!this.finish()) return
    this.abort(reason)
    this.sink?.settle(false, 'CANCELLED', 'The connection closed')
  }

  /** @internal Fire the AbortSignal, if one was handed out. */
  abort (reason: unknown): void {
    this.controller?.abort(reason)
  }
}
