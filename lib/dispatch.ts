import type { RawData } from 'ws'
import type { Connection } from './connection.js'
import type { HandlerContext, OutboundOptions, OutcomeSink } from './context.js'
import { parseFrame, readEnvelope, type MessageId } from './envelope.js'
import { CloseCode, SendFailure, WireErrorCode } from './errors.js'
import { nextFrame, type Blame } from './error-run.js'
import { scanId } from './id-scan.js'
import { handleJsonRpc, JsonRpcCode, looksLikeJsonRpc, sendJsonRpcFailure, type JsonRpcHost } from './jsonrpc.js'
import type { RouterConfig } from './options.js'
import { takeToken } from './rate-limit.js'
import { validationDetails, type HandlerRegistry, type Route } from './registry.js'
import type { SendDone, SendResult } from './send.js'
import type { RouterStats } from './stats.js'

/**
 * The per-frame pipeline: parse → (JSON-RPC?) → envelope → lookup → payload
 * validation → handler → reply. Handlers start in arrival order and are not
 * awaited before the next frame, so a slow handler never blocks a `ping`.
 */

/** Options of a failure answered with an error frame. */
export interface FrameFailure {
  readonly code: string
  readonly message: string
  readonly id: MessageId | undefined
  readonly messageType?: string | undefined
  readonly details?: unknown
  readonly err?: unknown
  /** Log level of the one log line; `false` when it was logged already or is only counted. */
  readonly level: 'info' | 'warn' | 'error' | false
  /** Counts toward `maxConsecutiveErrors` (default true); flood refusals do not. */
  readonly consecutive?: boolean
  /** Arrival number of the failed frame: its outcome counts at that position. */
  readonly seq: number
  /** Who caused it: decides the close code of a run of failures (1008 or 1011). */
  readonly blame: Blame
}

/**
 * What the frame path needs of the router that owns it: narrow, so this
 * module never imports its owner (the router hands itself in).
 */
export interface PipelineHost extends JsonRpcHost {
  readonly config: RouterConfig
  readonly stats: RouterStats
  readonly registry: HandlerRegistry
  readonly enforcePayloadLimit: boolean
  rateLimited: (conn: Connection, id: MessageId | undefined, now: number) => void
  protocolError: (conn: Connection, code: string, closeCode: number | null, message: string) => void
  rejectFrame: (conn: Connection, failure: FrameFailure) => void
  newContext: (conn: Connection, route: Route, id: MessageId | undefined, seq: number) => HandlerContext<unknown>
  handlerFailed: (ctx: HandlerContext<unknown>, err: unknown) => void
  trackHandler: (ctx: HandlerContext<unknown>) => void
  sendFrame: (conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions) => Promise<SendResult>
  sendFrameThen: <T>(conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options: OutboundOptions | undefined, done: SendDone<T>, token: T) => void
  countSuccess: (conn: Connection, seq: number) => void
}

export function handleFrame (router: PipelineHost, conn: Connection, data: RawData, isBinary: boolean): void {
  const now = Date.now()
  conn.lastSeenAt = now
  conn.lastFrameAt = now
  router.stats.framesReceived++
  const seq = nextFrame(conn)
  const config = router.config
  const rateLimit = config.rateLimit
  if (rateLimit !== false && !takeToken(conn, rateLimit, now)) {
    // Shedding must cost less than serving: the frame is not parsed, its id is scanned for.
    router.rateLimited(conn, isBinary ? undefined : scanId(data as Buffer), now)
    return
  }
  if (isBinary) {
    router.stats.countInvalid(WireErrorCode.BINARY_NOT_SUPPORTED)
    if (config.protocol === 'jsonrpc') sendJsonRpcFailure(router, conn, JsonRpcCode.INVALID_REQUEST)
    else router.rejectFrame(conn, { code: WireErrorCode.BINARY_NOT_SUPPORTED, message: 'Binary frames are not supported: send UTF-8 JSON text', id: undefined, level: 'warn', seq, blame: 'client' })
    return
  }
  const buffer = data as Buffer
  if (router.enforcePayloadLimit && buffer.length > config.maxPayloadBytes) {
    // The app's ws server allows larger frames: the router refuses it as ws would have.
    router.stats.countInvalid('MESSAGE_TOO_BIG')
    conn.close(CloseCode.MESSAGE_TOO_BIG, 'Max payload size exceeded')
    router.protocolError(conn, 'MESSAGE_TOO_BIG', CloseCode.MESSAGE_TOO_BIG, `frame of ${buffer.length} bytes over maxPayloadBytes (${config.maxPayloadBytes})`)
    return
  }
  const parsed = parseFrame(buffer.toString(), config.maxDepth)
  if (!parsed.ok) {
    if (config.protocol === 'jsonrpc') {
      // Counted as its JSON-RPC code (jsonrpc:-32700 / -32600) by sendJsonRpcFailure.
      // Bad JSON is a parse error; valid JSON refused for safety is an invalid request.
      if (parsed.code === WireErrorCode.INVALID_JSON) sendJsonRpcFailure(router, conn, JsonRpcCode.PARSE_ERROR)
      else sendJsonRpcFailure(router, conn, JsonRpcCode.INVALID_REQUEST, parsed.id ?? null, { reason: parsed.code })
      return
    }
    router.stats.countInvalid(parsed.code)
    router.rejectFrame(conn, { code: parsed.code, message: parsed.message, id: parsed.id, level: 'warn', seq, blame: 'client' })
    return
  }
  const value = parsed.value
  if (config.protocol === 'jsonrpc' || (config.protocol === 'auto' && looksLikeJsonRpc(value))) {
    handleJsonRpc(router, conn, value)
    return
  }
  const decoded = readEnvelope(value)
  if (!decoded.ok) {
    router.stats.countInvalid(decoded.code)
    router.rejectFrame(conn, { code: decoded.code, message: decoded.message, id: decoded.id, level: 'warn', seq, blame: 'client' })
    return
  }
  processEnvelope(router, conn, decoded.type, decoded.id, decoded.payload, seq, undefined)
}

/**
 * Lookup → validation → handler → reply, for a frame or one item of a
 * batch. Every path ends in exactly one answer and one `sink.settle()`.
 */
export function processEnvelope (router: PipelineHost, conn: Connection, type: string, id: MessageId | undefined, payload: unknown, seq: number, sink: OutcomeSink | undefined): void {
  const route = router.registry.get(type)
  if (route === undefined) {
    handleUnknownType(router, conn, type, id, seq, sink)
    return
  }
  route.counters.received++
  if (route.payloadCheck !== null && !route.payloadCheck.Check(payload)) {
    route.counters.failed++
    router.stats.countInvalid(WireErrorCode.VALIDATION_FAILED)
    const message = `Payload of "${type}" does not match its schema`
    router.rejectFrame(conn, { code: WireErrorCode.VALIDATION_FAILED, message, details: validationDetails(route.payloadCheck, payload), id, messageType: type, level: 'warn', seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.VALIDATION_FAILED, message)
    return
  }
  if (conn.inFlight >= router.config.maxInFlight) {
    router.stats.overloaded++
    route.counters.failed++
    const message = `Too many messages in progress (${router.config.maxInFlight}); retry later`
    router.rejectFrame(conn, { code: WireErrorCode.OVERLOADED, message, id, messageType: type, level: false, consecutive: false, seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.OVERLOADED, message)
    return
  }
  const ctx = router.newContext(conn, route, id, seq)
  ctx.sink = sink
  let result: unknown
  try {
    result = route.handler(payload, ctx)
  } catch (err) {
    router.handlerFailed(ctx, err)
    return
  }
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    router.trackHandler(ctx)
    ;(result as PromiseLike<unknown>).then(
      (value) => complete(router, ctx, value),
      (err: unknown) => router.handlerFailed(ctx, err)
    )
    return
  }
  complete(router, ctx, result)
}

function handleUnknownType (router: PipelineHost, conn: Connection, type: string, id: MessageId | undefined, seq: number, sink: OutcomeSink | undefined): void {
  router.stats.unhandled++
  const policy = router.config.unknownType
  if (policy === 'error') {
    const message = `No handler for message type "${type}"`
    router.stats.countInvalid(WireErrorCode.UNKNOWN_TYPE)
    router.rejectFrame(conn, { code: WireErrorCode.UNKNOWN_TYPE, message, id, messageType: type, level: 'warn', seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.UNKNOWN_TYPE, message)
    return
  }
  if (policy === 'ack' && id !== undefined) router.sendFrameThen(conn, 'ack', id, { receivedType: type, handled: false }, undefined, ignoreOutcome, null)
  // 'ignore': nothing is sent, by the app's explicit choice.
  sink?.settle(false, WireErrorCode.UNKNOWN_TYPE, `No handler for message type "${type}"`)
}

/** The handler returned: send its reply (or an ack), then count the outcome. */
function complete (router: PipelineHost, ctx: HandlerContext<unknown>, value: unknown): void {
  if (!ctx.finish()) return
  // The frame succeeded now, at its place in arrival order: its reply's write
  // is not awaited, so pipelined frames are judged in the order they came.
  router.countSuccess(ctx.conn, ctx.seq)
  if (ctx.pendingReply !== null) {
    // reply() was called: that is the answer, a return value is not sent twice.
    ctx.pendingReply.then((result) => replied(router, ctx, result))
  } else if (value !== undefined) {
    // No promise on the success path: the write callback reports the outcome.
    router.sendFrameThen(ctx.conn, ctx.route.replyType, ctx.id, value, { route: ctx.route, droppable: ctx.route.droppable }, (c: HandlerContext<unknown>, result: SendResult) => replied(router, c, result), ctx)
  } else if (ctx.id !== undefined) {
    router.sendFrameThen(ctx.conn, 'ack', ctx.id, { receivedType: ctx.type, handled: true }, undefined, (c: HandlerContext<unknown>, result: SendResult) => replied(router, c, result), ctx)
  } else {
    ctx.route.counters.handled++
    ctx.sink?.settle(true)
  }
}

/** A send whose outcome the router counts (and logs when it failed); nothing else waits on it. */
function ignoreOutcome (): void {}

/** Reasons for which the socket is fine and the client can still be told. */
function canStillAnswer (reason: SendFailure): boolean {
  return reason === SendFailure.INVALID_OUTBOUND || reason === SendFailure.TOO_LARGE || reason === SendFailure.SERIALIZE || reason === SendFailure.DROPPED
}

function replied (router: PipelineHost, ctx: HandlerContext<unknown>, result: SendResult): void {
  if (result.ok) {
    ctx.route.counters.handled++
    ctx.sink?.settle(true)
    return
  }
  ctx.route.counters.failed++
  const message = `The reply could not be sent (${result.reason})`
  ctx.sink?.settle(false, WireErrorCode.REPLY_FAILED, message)
  if (ctx.id !== undefined && canStillAnswer(result.reason)) {
    // The send failure was logged where it happened; this frame only keeps the correlation rule.
    router.rejectFrame(ctx.conn, { code: WireErrorCode.REPLY_FAILED, message, id: ctx.id, messageType: ctx.type, level: false, seq: ctx.seq, blame: 'server' })
  }
}
