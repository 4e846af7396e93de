import type { RawData } from 'ws'
import type { Connection } from './connection.js'
import type { HandlerContext } from './context.js'
import { decodeFrame } from './envelope.js'
import { CloseCode, SendFailure, WireErrorCode } from './errors.js'
import { validationDetails } from './registry.js'
import { takeToken } from './rate-limit.js'
import type { WsRouter } from './router.js'
import type { SendResult } from './send.js'

/**
 * The per-frame pipeline: parse → envelope → lookup → payload validation →
 * handler → reply. Handlers start in arrival order and are not awaited
 * before the next frame, so a slow handler never blocks a `ping`.
 */
export function handleFrame (router: WsRouter, conn: Connection, data: RawData, isBinary: boolean): void {
  const now = Date.now()
  conn.lastSeenAt = now
  conn.lastFrameAt = now
  router.stats.framesReceived++
  const rateLimit = router.config.rateLimit
  if (rateLimit !== false && !takeToken(conn, rateLimit, now)) {
    router.rateLimited(conn, isBinary ? undefined : readableId(data as Buffer, router.config.maxDepth), now)
    return
  }
  if (isBinary) {
    router.stats.countInvalid(WireErrorCode.BINARY_NOT_SUPPORTED)
    router.rejectFrame(conn, { code: WireErrorCode.BINARY_NOT_SUPPORTED, message: 'Binary frames are not supported: send UTF-8 JSON text', id: undefined, level: 'warn' })
    return
  }
  const buffer = data as Buffer
  if (router.enforcePayloadLimit && buffer.length > router.config.maxPayloadBytes) {
    router.stats.countInvalid('MESSAGE_TOO_BIG')
    conn.log.warn({ bytes: buffer.length, maxPayloadBytes: router.config.maxPayloadBytes, environment: router.config.environment }, 'closing websocket: frame over maxPayloadBytes')
    conn.socket.close(CloseCode.MESSAGE_TOO_BIG, 'Max payload size exceeded')
    return
  }
  const decoded = decodeFrame(buffer.toString(), router.config.maxDepth)
  if (!decoded.ok) {
    router.stats.countInvalid(decoded.code)
    router.rejectFrame(conn, { code: decoded.code, message: decoded.message, id: decoded.id, level: 'warn' })
    return
  }
  const { type, id, payload } = decoded
  const route = router.registry.get(type)
  if (route === undefined) {
    handleUnknownType(router, conn, type, id)
    return
  }
  route.counters.received++
  if (route.payloadCheck !== null && !route.payloadCheck.Check(payload)) {
    route.counters.failed++
    router.stats.countInvalid(WireErrorCode.VALIDATION_FAILED)
    router.rejectFrame(conn, {
      code: WireErrorCode.VALIDATION_FAILED,
      message: `Payload of "${type}" does not match its schema`,
      details: validationDetails(route.payloadCheck, payload),
      id,
      messageType: type,
      level: 'warn'
    })
    return
  }
  if (conn.inFlight >= router.config.maxInFlight) {
    router.stats.overloaded++
    route.counters.failed++
    router.rejectFrame(conn, { code: WireErrorCode.OVERLOADED, message: `Too many messages in progress (${router.config.maxInFlight}); retry later`, id, messageType: type, level: false, consecutive: false })
    return
  }
  const ctx = router.newContext(conn, route, id)
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

function handleUnknownType (router: WsRouter, conn: Connection, type: string, id: string | number | undefined): void {
  router.stats.unhandled++
  const policy = router.config.unknownType
  if (policy === 'ack') {
    if (id !== undefined) router.sendFrame(conn, 'ack', id, { receivedType: type, handled: false })
  } else if (policy === 'error') {
    router.stats.countInvalid(WireErrorCode.UNKNOWN_TYPE)
    router.rejectFrame(conn, { code: WireErrorCode.UNKNOWN_TYPE, message: `No handler for message type "${type}"`, id, messageType: type, level: 'warn' })
  }
  // 'ignore': nothing is sent, by the app's explicit choice.
}

/** The id of a frame refused before decoding, when it has a valid one. */
function readableId (data: Buffer, maxDepth: number): string | number | undefined {
  const decoded = decodeFrame(data.toString(), maxDepth)
  return decoded.id
}

/** The handler returned: send its reply (or an ack), then count the outcome. */
function complete (router: WsRouter, ctx: HandlerContext<unknown>, value: unknown): void {
  if (!ctx.finish()) return
  let sent: Promise<SendResult> | null
  if (ctx.pendingReply !== null) {
    // reply() was called: that is the answer, a return value is not sent twice.
    sent = ctx.pendingReply
  } else if (value !== undefined) {
    sent = router.sendFrame(ctx.conn, ctx.route.replyType, ctx.id, value, { route: ctx.route, droppable: ctx.route.droppable })
  } else if (ctx.id !== undefined) {
    sent = router.sendFrame(ctx.conn, 'ack', ctx.id, { receivedType: ctx.type, handled: true })
  } else {
    sent = null
  }
  if (sent === null) {
    ctx.route.counters.handled++
    router.countSuccess(ctx.conn)
    return
  }
  sent.then((result) => replied(router, ctx, result))
}

/** Reasons for which the socket is fine and the client can still be told. */
function canStillAnswer (reason: SendFailure): boolean {
  return reason === SendFailure.INVALID_OUTBOUND || reason === SendFailure.TOO_LARGE || reason === SendFailure.SERIALIZE || reason === SendFailure.DROPPED
}

function replied (router: WsRouter, ctx: HandlerContext<unknown>, result: SendResult): void {
  if (result.ok) {
    ctx.route.counters.handled++
    router.countSuccess(ctx.conn)
    return
  }
  ctx.route.counters.failed++
  if (ctx.id !== undefined && canStillAnswer(result.reason)) {
    // The send failure was logged where it happened; this frame only keeps the correlation rule.
    router.rejectFrame(ctx.conn, {
      code: WireErrorCode.REPLY_FAILED,
      message: `The reply could not be sent (${result.reason})`,
      id: ctx.id,
      messageType: ctx.type,
      level: false
    })
  }
}
