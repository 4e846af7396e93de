import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { compileSchema, validationDetails, type SchemaCheck, type StaticOf, type WsSchema } from './schema.js'
import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'
import { FST_WSR_DUPLICATE_HANDLER, FST_WSR_INVALID_HANDLER, isWsRouterError, WireErrorCode } from './errors.js'
import { newRef } from './error-frames.js'
import { hasRoom, invoke, Invocation } from './invoke.js'
import { sendJsonRpc } from './outbound.js'
import type { TypeCounters } from './stats.js'
import type { SpanSink } from './tracing.js'

/**
 * JSON-RPC 2.0 (https://www.jsonrpc.org/specification), complete: requests,
 * notifications (never answered), batches, and the standard error codes.
 * A frame whose JSON is an array, or an object with a `jsonrpc` member, is
 * JSON-RPC on an `auto` route; on a `jsonrpc` route every frame is.
 */

export const JsonRpcCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** Server errors of this implementation, within -32000..-32099. */
  APPLICATION_ERROR: -32000,
  RATE_LIMITED: -32001,
  OVERLOADED: -32002,
  TIMEOUT: -32003
} as const)

const messages: Readonly<Record<number, string>> = Object.freeze({
  [-32700]: 'Parse error',
  [-32600]: 'Invalid Request',
  [-32601]: 'Method not found',
  [-32602]: 'Invalid params',
  [-32603]: 'Internal error',
  [-32001]: 'Rate limit exceeded',
  [-32002]: 'Too many calls in progress',
  [-32003]: 'Method timed out'
})

/**
 * Throw from a method to answer with an application error: `code` in
 * -32000..-32099 (server errors) or any code outside the reserved
 * -32768..-32000 range.
 */
export class JsonRpcError extends Error {
  readonly code: number
  readonly data: unknown

  constructor (code: number, message: string, data?: unknown) {
    super(message)
    this.name = 'JsonRpcError'
    this.code = code
    this.data = data
  }
}

export type JsonRpcId = string | number | null

/** What a method handler receives besides its params. */
export interface JsonRpcCallContext {
  readonly method: string
  /** `undefined` for a notification. */
  readonly id: JsonRpcId | undefined
  readonly connectionId: string
  readonly userId: string
  readonly request: FastifyRequest
  readonly log: FastifyBaseLogger
  /** Fires on timeout or when the connection closes. */
  readonly signal: AbortSignal
}

export type MethodHandler<Params = unknown, Result = unknown> =
  (params: Params, ctx: JsonRpcCallContext) => Result | Promise<Result>

export interface MethodOptions<ParamsSchema extends WsSchema | undefined = undefined> {
  /** TypeBox schema of `params`: a Tuple for positional, an Object for named, a Union for both. */
  params?: ParamsSchema
  override?: boolean
  timeoutMs?: number
}

export interface Method {
  readonly name: string
  readonly handler: MethodHandler
  readonly paramsCheck: SchemaCheck | null
  readonly timeoutMs: number
  readonly counters: TypeCounters
}

export type ParamsOf<S> = StaticOf<S>

export class MethodRegistry {
  private readonly methods = new Map<string, Method>()

  get (name: string): Method | undefined {
    return this.methods.get(name)
  }

  add (name: string, options: MethodOptions<WsSchema | undefined>, handler: MethodHandler, defaultTimeoutMs: number, counters: TypeCounters): Method {
    if (typeof name !== 'string' || name.length === 0 || name.length > 128) {
      throw new FST_WSR_INVALID_HANDLER(String(name), 'a JSON-RPC method name must be a string of 1 to 128 characters')
    }
    if (name.startsWith('rpc.')) throw new FST_WSR_INVALID_HANDLER(name, 'method names starting with "rpc." are reserved by JSON-RPC 2.0')
    if (typeof handler !== 'function') throw new FST_WSR_INVALID_HANDLER(name, 'handler must be a function')
    if (this.methods.has(name) && options.override !== true) throw new FST_WSR_DUPLICATE_HANDLER(`rpc:${name}`)
    const paramsCheck: SchemaCheck | null = options.params === undefined ? null : compileSchema(name, options.params, 'params schema')
    const method: Method = Object.freeze({ name, handler, paramsCheck, timeoutMs: options.timeoutMs ?? defaultTimeoutMs, counters })
    this.methods.set(name, method)
    return method
  }
}

/** What the JSON-RPC engine needs from the router: its shared state and its methods. */
export interface JsonRpcHost extends RouterCore {
  readonly methods: MethodRegistry
}

interface Response {
  jsonrpc: '2.0'
  result?: unknown
  error?: { code: number, message: string, data?: unknown }
  id: JsonRpcId
}

function errorResponse (id: JsonRpcId, code: number, message?: string, data?: unknown): Response {
  const error: Response['error'] = { code, message: message ?? messages[code] ?? 'Server error' }
  if (data !== undefined) error.data = data
  return { jsonrpc: '2.0', error, id }
}

/** Whether a parsed frame is JSON-RPC rather than an envelope (for `auto` routes). */
export function looksLikeJsonRpc (value: unknown): boolean {
  return Array.isArray(value) || (value !== null && typeof value === 'object' && 'jsonrpc' in value)
}

function isValidId (id: unknown): id is JsonRpcId {
  return id === null || typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))
}

/** A JSON-RPC answer for a frame that could not be read at all (`jsonrpc` routes). */
export function sendJsonRpcFailure (host: RouterCore, conn: Connection, code: number, id: JsonRpcId = null, data?: unknown): void {
  countJsonRpcError(host, code)
  sendJsonRpc(host, conn, JSON.stringify(errorResponse(id, code, undefined, data)), 'jsonrpc_error')
}

/** Handle one parsed JSON-RPC frame: a request, a notification or a batch. */
export function handleJsonRpc (host: JsonRpcHost, conn: Connection, value: unknown): void {
  if (!Array.isArray(value)) {
    const pending = traceRequest(host, conn, value)
    if (pending === null) return
    if (pending instanceof Promise) {
      pending.then((response) => { if (response !== null) send(host, conn, response) }, () => {})
    } else {
      send(host, conn, pending)
    }
    return
  }
  if (value.length === 0) {
    sendJsonRpcFailure(host, conn, JsonRpcCode.INVALID_REQUEST)
    return
  }
  const answers = value.map((item) => traceRequest(host, conn, item))
  Promise.all(answers).then((responses) => {
    const present = responses.filter((response): response is Response => response !== null)
    // A batch of notifications only is answered with nothing at all.
    if (present.length > 0) sendJsonRpc(host, conn, JSON.stringify(present), 'jsonrpc_batch')
  }, () => {})
}

function send (host: RouterCore, conn: Connection, response: Response): void {
  let text: string
  try {
    text = JSON.stringify(response)
  } catch (err) {
    text = JSON.stringify(errorResponse(response.id, JsonRpcCode.INTERNAL_ERROR, undefined, host.config.exposeErrorMessages ? { reason: (err as Error).message } : undefined))
  }
  sendJsonRpc(host, conn, text, 'jsonrpc_response')
}

/** Run one request object, inside its span when traced (a request object with a method name). */
function traceRequest (host: JsonRpcHost, conn: Connection, request: unknown): Response | Promise<Response | null> | null {
  const tracing = host.tracing
  if (tracing === null || request === null || typeof request !== 'object' || typeof (request as { method?: unknown }).method !== 'string' || !tracing.enabled()) {
    return runRequest(host, conn, request, undefined)
  }
  const traced = request as Record<string, unknown>
  return tracing.jsonRpc(conn, traced.method as string, traced, (sink) => runRequest(host, conn, request, sink))
}

/**
 * Run one request object. Returns the response, a promise of it, or null
 * for a notification (which is never answered, whatever happens). `sink`
 * (a span) is told the outcome once, notifications included.
 */
function runRequest (host: JsonRpcHost, conn: Connection, request: unknown, sink: SpanSink | undefined): Response | Promise<Response | null> | null {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    countJsonRpcError(host, JsonRpcCode.INVALID_REQUEST)
    return errorResponse(null, JsonRpcCode.INVALID_REQUEST)
  }
  const { jsonrpc, method, params, id } = request as { jsonrpc?: unknown, method?: unknown, params?: unknown, id?: unknown }
  const hasId = 'id' in request
  if (jsonrpc !== '2.0' || typeof method !== 'string' || (hasId && !isValidId(id)) ||
      (params !== undefined && (params === null || typeof params !== 'object'))) {
    countJsonRpcError(host, JsonRpcCode.INVALID_REQUEST)
    sink?.settle(false, `jsonrpc:${JsonRpcCode.INVALID_REQUEST}`)
    return errorResponse(hasId && isValidId(id) ? id : null, JsonRpcCode.INVALID_REQUEST)
  }
  const callId: JsonRpcId | undefined = hasId ? id as JsonRpcId : undefined
  const found = host.methods.get(method)
  if (found === undefined) {
    countJsonRpcError(host, JsonRpcCode.METHOD_NOT_FOUND)
    sink?.settle(false, `jsonrpc:${JsonRpcCode.METHOD_NOT_FOUND}`)
    return callId === undefined ? null : errorResponse(callId, JsonRpcCode.METHOD_NOT_FOUND)
  }
  found.counters.received++
  if (!hasRoom(host, conn)) {
    found.counters.failed++
    countJsonRpcError(host, JsonRpcCode.OVERLOADED)
    sink?.settle(false, `jsonrpc:${JsonRpcCode.OVERLOADED}`)
    return callId === undefined ? null : errorResponse(callId, JsonRpcCode.OVERLOADED)
  }
  if (found.paramsCheck !== null && !found.paramsCheck.Check(params)) {
    found.counters.failed++
    countJsonRpcError(host, JsonRpcCode.INVALID_PARAMS)
    sink?.settle(false, `jsonrpc:${JsonRpcCode.INVALID_PARAMS}`)
    return callId === undefined ? null : errorResponse(callId, JsonRpcCode.INVALID_PARAMS, undefined, validationDetails(found.paramsCheck, params))
  }
  const call = new JsonRpcCall(host, conn, found, callId)
  call.sink = sink
  // Still running: its response comes when the runner settles it. A thenable
  // that answered at once has its response already.
  if (invoke(call, found.handler, params)) return new Promise((resolve) => { call.resolve = resolve })
  return call.response
}

/** JSON-RPC errors are counted under `jsonrpc:<code>`. */
function countJsonRpcError (core: RouterCore, code: number): void {
  core.stats.countInvalid(`jsonrpc:${code}`)
}

/**
 * @internal One method call: its context, and, while it runs, its deadline and
 * pending-handler entry. The invoke runner (lib/invoke.ts) decides its
 * outcome; this class turns the outcome into a JSON-RPC response.
 */
export class JsonRpcCall extends Invocation implements JsonRpcCallContext {
  readonly method: string
  readonly id: JsonRpcId | undefined
  /** The response once settled (null: none is sent), while nobody awaits it. */
  response: Response | null = null
  /** Set while an async call is awaited: takes its response. */
  resolve: ((response: Response | null) => void) | null = null
  /** Told the call's outcome (its span, when traced). */
  sink: SpanSink | undefined = undefined

  constructor (core: RouterCore, conn: Connection, readonly target: Method, id: JsonRpcId | undefined) {
    super(core, conn)
    this.method = target.name
    this.id = id
  }

  get connectionId (): string { return this.conn.id }
  get userId (): string { return this.conn.userId }
  get request (): FastifyRequest { return this.conn.request }
  get log (): FastifyBaseLogger { return this.conn.log }
  get timeoutMs (): number { return this.target.timeoutMs }
  get observedName (): string { return `rpc:${this.method}` }
  get kindName (): string { return 'Method' }

  private answer (response: Response | null): void {
    if (this.resolve !== null) this.resolve(response)
    else this.response = response
  }

  succeeded (value: unknown): void {
    this.target.counters.handled++
    this.sink?.settle(true)
    this.answer(this.id === undefined ? null : { jsonrpc: '2.0', result: value === undefined ? null : value, id: this.id })
  }

  failed (err: unknown): void {
    this.target.counters.failed++
    const core = this.core
    let response: Response
    let level: 'warn' | 'error' = 'error'
    if (err instanceof JsonRpcError) {
      response = errorResponse(this.id ?? null, err.code, err.message, err.data)
      level = 'warn'
    } else if (isWsRouterError(err)) {
      response = errorResponse(this.id ?? null, JsonRpcCode.APPLICATION_ERROR, err.message, { code: err.code, details: err.details })
      level = 'warn'
    } else {
      const ref = newRef()
      const message = core.config.exposeErrorMessages && err instanceof Error ? err.message : messages[JsonRpcCode.INTERNAL_ERROR]
      response = errorResponse(this.id ?? null, JsonRpcCode.INTERNAL_ERROR, message, { ref })
      this.conn.log.error({ method: this.method, messageId: this.id, ref, err, environment: core.config.environment, state: this.conn.state }, 'json-rpc method failed')
      countJsonRpcError(core, JsonRpcCode.INTERNAL_ERROR)
      this.sink?.settle(false, `jsonrpc:${JsonRpcCode.INTERNAL_ERROR}`, message)
      this.answer(this.id === undefined ? null : response)
      return
    }
    countJsonRpcError(core, response.error?.code ?? JsonRpcCode.APPLICATION_ERROR)
    this.sink?.settle(false, `jsonrpc:${response.error?.code ?? JsonRpcCode.APPLICATION_ERROR}`, response.error?.message)
    this.conn.log[level]({ method: this.method, messageId: this.id, code: response.error?.code, err, environment: core.config.environment }, 'json-rpc method refused the call')
    this.answer(this.id === undefined ? null : response)
  }

  timedOut (message: string): void {
    this.target.counters.failed++
    countJsonRpcError(this.core, JsonRpcCode.TIMEOUT)
    this.sink?.settle(false, `jsonrpc:${JsonRpcCode.TIMEOUT}`, message)
    this.conn.log.error({ method: this.method, messageId: this.id, environment: this.core.config.environment, code: WireErrorCode.HANDLER_TIMEOUT }, message)
    this.answer(this.id === undefined ? null : errorResponse(this.id, JsonRpcCode.TIMEOUT, message))
  }

  cancelled (): void {
    this.sink?.settle(false, 'CANCELLED', 'The connection closed')
    this.answer(null)
  }
}
