import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Connection, ConnectionStatus } from './connection.js'
import type { RouterCore } from './core.js'
import type { Identity } from './identity.js'
import type { MessageId } from './envelope.js'
import type { SchemaCheck } from './schema.js'
import type { TypeCounters } from './stats.js'
import { failure, type SendOptions, type SendResult } from './send.js'
import { isWsRouterError, SendFailure, WireErrorCode } from './errors.js'
import { rejectFrame } from './error-frames.js'
import { frameSucceeded } from './error-run.js'
import { Invocation } from './invoke.js'
import { sendFailed, sendFrame, sendFrameThen } from './outbound.js'

/**
 * Told how one envelope ended: used by `batch` to build its result. The
 * ordinary frame path passes none, so it allocates nothing for it.
 */
export interface OutcomeSink {
  settle: (ok: boolean, code?: string, message?: string) => void
}

const ALREADY_ANSWERED = failure(SendFailure.ALREADY_ANSWERED)
const GENERIC_HANDLER_MESSAGE = 'The server could not handle this message'

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

/**
 * The second argument of every handler. One is created per handled frame;
 * its AbortSignal is created only when a handler asks for it. While an
 * async handler runs, the context is also its deadline entry and its
 * pending-handler entry on the connection (no extra objects per frame).
 * The invoke runner (lib/invoke.ts) decides its outcome; this class turns
 * the outcome into the envelope protocol's answer.
 */
export class HandlerContext<Reply = unknown> extends Invocation {
  /** The frame's `id`, if it had one. */
  readonly id: MessageId | undefined
  /** The frame's `type`. */
  readonly type: string
  /** @internal */
  readonly route: ContextRoute
  /** @internal true once a reply was sent (or attempted) through `reply()`. */
  replied = false
  /** @internal the send started by `reply()`, awaited before the frame counts as handled. */
  pendingReply: Promise<SendResult> | null = null
  /** @internal arrival number of the frame (frame-order error accounting). */
  readonly seq: number
  /** @internal told the outcome (batch items only). */
  sink: OutcomeSink | undefined = undefined

  /** @internal */
  constructor (core: RouterCore, conn: Connection, route: ContextRoute, id: MessageId | undefined, seq: number) {
    super(core, conn)
    this.seq = seq
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

  /** The connection checker for this handler's connection. */
  status (): ConnectionStatus {
    return this.conn.status()
  }

  /** Send a frame of any type to this connection (no id). */
  send (type: string, payload?: unknown, options?: SendOptions): Promise<SendResult> {
    return sendFrame(this.core, this.conn, type, undefined, payload, options)
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
      return Promise.resolve(sendFailed(this.core, this.conn, this.route.replyType, this.id, ALREADY_ANSWERED))
    }
    this.replied = true
    const sent = sendFrame(this.core, this.conn, this.route.replyType, this.id, payload, { route: this.route, droppable: this.route.droppable })
    this.pendingReply = sent
    return sent
  }

  /** @internal */
  get timeoutMs (): number {
    return this.route.timeoutMs
  }

  /** @internal */
  get observedName (): string {
    return this.type
  }

  /** @internal */
  get kindName (): string {
    return 'Handler'
  }

  /** @internal The handler returned: send its reply (or an ack), then count the outcome. */
  succeeded (value: unknown): void {
    // The frame succeeded now, at its place in arrival order: its reply's write
    // is not awaited, so pipelined frames are judged in the order they came.
    frameSucceeded(this.conn, this.seq)
    if (this.pendingReply !== null) {
      // reply() was called: that is the answer, a return value is not sent twice.
      this.pendingReply.then((result) => this.replyWritten(result))
    } else if (value !== undefined) {
      // No promise on the success path: the write callback reports the outcome.
      sendFrameThen(this.core, this.conn, this.route.replyType, this.id, value, { route: this.route, droppable: this.route.droppable }, replyWritten, this)
    } else if (this.id !== undefined) {
      sendFrameThen(this.core, this.conn, 'ack', this.id, { receivedType: this.type, handled: true }, undefined, replyWritten, this)
    } else {
      this.route.counters.handled++
      this.sink?.settle(true)
    }
  }

  /** @internal The reply's write ended. */
  replyWritten (result: SendResult): void {
    if (result.ok) {
      this.route.counters.handled++
      this.sink?.settle(true)
      return
    }
    this.route.counters.failed++
    const message = `The reply could not be sent (${result.reason})`
    this.sink?.settle(false, WireErrorCode.REPLY_FAILED, message)
    if (this.id !== undefined && canStillAnswer(result.reason)) {
      // The send failure was logged where it happened; this frame only keeps the correlation rule.
      rejectFrame(this.core, this.conn, { code: WireErrorCode.REPLY_FAILED, message, id: this.id, messageType: this.type, level: false, seq: this.seq, blame: 'server' })
    }
  }

  /** @internal The handler threw or rejected. */
  failed (err: unknown): void {
    const core = this.core
    core.stats.handlerErrors++
    this.route.counters.failed++
    if (isWsRouterError(err)) {
      // A coded refusal: the handler judged the frame, so the client is to blame.
      rejectFrame(core, this.conn, { code: err.code, message: err.message, details: err.details, id: this.id, messageType: this.type, err, level: 'warn', seq: this.seq, blame: 'client' })
      this.sink?.settle(false, err.code, err.message)
      return
    }
    const message = core.config.exposeErrorMessages && err instanceof Error ? err.message : GENERIC_HANDLER_MESSAGE
    rejectFrame(core, this.conn, { code: WireErrorCode.HANDLER_ERROR, message, id: this.id, messageType: this.type, err, level: 'error', seq: this.seq, blame: 'server' })
    this.sink?.settle(false, WireErrorCode.HANDLER_ERROR, message)
  }

  /** @internal The handler ran past its deadline. */
  timedOut (message: string): void {
    this.core.stats.handlerTimeouts++
    this.route.counters.failed++
    rejectFrame(this.core, this.conn, { code: WireErrorCode.HANDLER_TIMEOUT, message, id: this.id, messageType: this.type, level: 'error', seq: this.seq, blame: 'server' })
    this.sink?.settle(false, WireErrorCode.HANDLER_TIMEOUT, message)
  }

  /** @internal The connection closed while the handler ran. */
  cancelled (): void {
    this.sink?.settle(false, 'CANCELLED', 'The connection closed')
  }
}

/** Reasons for which the socket is fine and the client can still be told. */
function canStillAnswer (reason: SendFailure): boolean {
  return reason === SendFailure.INVALID_OUTBOUND || reason === SendFailure.TOO_LARGE || reason === SendFailure.SERIALIZE || reason === SendFailure.DROPPED
}

/** sendFrameThen's callback for a reply or ack: no closure per frame. */
function replyWritten (ctx: HandlerContext<unknown>, result: SendResult): void {
  ctx.replyWritten(result)
}
