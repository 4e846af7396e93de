import type { RawData } from 'ws'
import type { Connection } from './connection.js'
import { closeConnection, protocolError } from './closing.js'
import { HandlerContext, type OutcomeSink } from './context.js'
import { encodeWithPayload, parseFrame, readEnvelope, type MessageId } from './envelope.js'
import { CloseCode, WireErrorCode } from './errors.js'
import { rejectFrame } from './error-frames.js'
import { nextFrame } from './error-run.js'
import { scanId } from './id-scan.js'
import { hasRoom, invoke } from './invoke.js'
import { handleJsonRpc, JsonRpcCode, looksLikeJsonRpc, sendJsonRpcFailure, type JsonRpcHost } from './jsonrpc.js'
import { ignoreOutcome, sendFrameThen, writeFrameNow } from './outbound.js'
import { ABUSE_WINDOW_MS, countRefusal, takeToken, type RateLimitConfig } from './rate-limit.js'
import type { HandlerRegistry } from './registry.js'
import { validationDetails } from './schema.js'

/**
 * The per-frame pipeline: parse → (JSON-RPC?) → envelope → lookup → payload
 * validation → handler → reply. Handlers start in arrival order and are not
 * awaited before the next frame, so a slow handler never blocks a `ping`.
 */

/**
 * What the frame path needs of the router that owns it: the shared state
 * and the two registries, so this module never imports its owner.
 */
export interface PipelineHost extends JsonRpcHost {
  readonly registry: HandlerRegistry
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
    rateLimited(router, conn, isBinary ? undefined : scanId(data as Buffer), now)
    return
  }
  if (isBinary) {
    router.stats.countInvalid(WireErrorCode.BINARY_NOT_SUPPORTED)
    if (config.protocol === 'jsonrpc') sendJsonRpcFailure(router, conn, JsonRpcCode.INVALID_REQUEST)
    else rejectFrame(router, conn, { code: WireErrorCode.BINARY_NOT_SUPPORTED, message: 'Binary frames are not supported: send UTF-8 JSON text', id: undefined, level: 'warn', seq, blame: 'client' })
    return
  }
  const buffer = data as Buffer
  if (router.enforcePayloadLimit && buffer.length > config.maxPayloadBytes) {
    // The app's ws server allows larger frames: the router refuses it as ws would have.
    router.stats.countInvalid('MESSAGE_TOO_BIG')
    conn.close(CloseCode.MESSAGE_TOO_BIG, 'Max payload size exceeded')
    protocolError(router, conn, 'MESSAGE_TOO_BIG', CloseCode.MESSAGE_TOO_BIG, `frame of ${buffer.length} bytes over maxPayloadBytes (${config.maxPayloadBytes})`)
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
    rejectFrame(router, conn, { code: parsed.code, message: parsed.message, id: parsed.id, level: 'warn', seq, blame: 'client' })
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
    rejectFrame(router, conn, { code: decoded.code, message: decoded.message, id: decoded.id, level: 'warn', seq, blame: 'client' })
    return
  }
  const tracing = router.tracing
  if (tracing === null || !tracing.enabled()) {
    processEnvelope(router, conn, decoded.type, decoded.id, decoded.payload, seq, undefined)
    return
  }
  // Traced: the span is the outcome sink, and the handler runs in its context.
  tracing.envelope(conn, decoded.type, decoded.id, value as Record<string, unknown>, (sink) => processEnvelope(router, conn, decoded.type, decoded.id, decoded.payload, seq, sink))
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
    rejectFrame(router, conn, { code: WireErrorCode.VALIDATION_FAILED, message, details: validationDetails(route.payloadCheck, payload), id, messageType: type, level: 'warn', seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.VALIDATION_FAILED, message)
    return
  }
  if (!hasRoom(router, conn)) {
    router.stats.overloaded++
    route.counters.failed++
    const message = `Too many messages in progress (${router.config.maxInFlight}); retry later`
    rejectFrame(router, conn, { code: WireErrorCode.OVERLOADED, message, id, messageType: type, level: false, consecutive: false, seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.OVERLOADED, message)
    return
  }
  const ctx = new HandlerContext(router, conn, route, id, seq)
  ctx.sink = sink
  invoke(ctx, route.handler, payload)
}

function handleUnknownType (router: PipelineHost, conn: Connection, type: string, id: MessageId | undefined, seq: number, sink: OutcomeSink | undefined): void {
  router.stats.unhandled++
  const policy = router.config.unknownType
  if (policy === 'error') {
    const message = `No handler for message type "${type}"`
    router.stats.countInvalid(WireErrorCode.UNKNOWN_TYPE)
    rejectFrame(router, conn, { code: WireErrorCode.UNKNOWN_TYPE, message, id, messageType: type, level: 'warn', seq, blame: 'client' })
    sink?.settle(false, WireErrorCode.UNKNOWN_TYPE, message)
    return
  }
  if (policy === 'ack' && id !== undefined) sendFrameThen(router, conn, 'ack', id, { receivedType: type, handled: false }, undefined, ignoreOutcome, null)
  // 'ignore': nothing is sent, by the app's explicit choice.
  sink?.settle(false, WireErrorCode.UNKNOWN_TYPE, `No handler for message type "${type}"`)
}

/**
 * A frame refused by the token bucket: answered with `RATE_LIMITED`, logged
 * once per abuse window, and past the abuse threshold the connection is
 * closed with 1008.
 */
export function rateLimited (router: PipelineHost, conn: Connection, id: MessageId | undefined, now: number): void {
  router.stats.rateLimited++
  const limit = router.config.rateLimit as RateLimitConfig
  const firstInWindow = now - conn.abuseWindowStart > ABUSE_WINDOW_MS || conn.refusedInWindow === 0
  const abusive = countRefusal(conn, limit, now)
  if (router.config.protocol === 'jsonrpc') {
    sendJsonRpcFailure(router, conn, JsonRpcCode.RATE_LIMITED, typeof id === 'string' || typeof id === 'number' ? id : null)
  } else if (!firstInWindow) {
    // The steady state of a flood: a constant frame, written without waiting
    // (a flooder over the high-water mark is closed with 1013, not waited on).
    writeFrameNow(router, conn, 'error', id, encodeWithPayload('error', id, router.rateLimitPayloadJson))
  } else {
    rejectFrame(router, conn, {
      code: WireErrorCode.RATE_LIMITED,
      message: router.rateLimitMessage,
      id,
      level: 'warn',
      consecutive: false,
      seq: conn.frameSeq,
      blame: 'client'
    })
  }
  if (abusive) {
    closeConnection(router, conn, {
      code: CloseCode.POLICY_VIOLATION,
      reason: 'rate limit exceeded',
      counter: 'abuseCloses',
      level: 'warn',
      message: 'closing websocket: sustained flooding (1008)',
      fields: { refusedInWindow: conn.refusedInWindow }
    })
  }
}
