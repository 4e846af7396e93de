/**
 * OpenTelemetry traces through `@opentelemetry/api` only (an optional peer,
 * loaded by plugins/observability.ts when the `tracing` option is set; the
 * app brings the SDK). Spans follow the messaging semantic conventions:
 * `process <type>` per handled message (envelope or JSON-RPC), `send <type>`
 * per fan-out, `invoke_agent <name>` per agent run.
 *
 * No SDK, no cost: until a tracer provider is registered the engine asks
 * `enabled()` (one lookup of the global provider, no span, no context, no
 * allocation) and takes its untraced path.
 */

/** @internal The API module's type: kept out of the published types, where the package may be absent. */
type OtelApi = typeof import('@opentelemetry/api')
type Span = import('@opentelemetry/api').Span
type Tracer = import('@opentelemetry/api').Tracer
type Context = import('@opentelemetry/api').Context
type SpanContext = import('@opentelemetry/api').SpanContext
type Attributes = import('@opentelemetry/api').Attributes
type TextMapGetter = import('@opentelemetry/api').TextMapGetter<Readonly<Record<string, unknown>>>

/** The part of an OpenTelemetry `TracerProvider` the router uses (structurally the API's own). */
export interface TracerProviderLike {
  getTracer: (name: string, version?: string) => object
}

export interface TracingConfig {
  /** Provider of the router's tracer; default the global one (`trace.getTracerProvider()`). */
  readonly tracerProvider: TracerProviderLike | undefined
  /** Record the connection id as `wsr.connection.id`. Default false. */
  readonly connectionId: boolean
  /** Record the user id as `user.id`. Default false. */
  readonly userId: boolean
}

/** What a span needs of a connection. */
export interface TracedConnection {
  readonly id: string
  readonly userId: string
}

/** Told once how a traced message ended; structurally the pipeline's `OutcomeSink`. */
export interface SpanSink {
  settle: (ok: boolean, code?: string, message?: string) => void
}

/** What a fan-out span reads of its outcome (the facade's `FanoutResult`, structurally). */
export interface TracedFanout {
  readonly ok: boolean
  readonly reason?: string
  readonly targets: number
  readonly delivered: number
  readonly failed: ReadonlyArray<{ readonly reason: string }>
  readonly remote: { readonly error?: string } | null
}

/** What an agent-run span reads of its outcome. */
export interface TracedRun {
  readonly status: string
  readonly error?: { readonly code: string }
}

/** The instrumentation scope of every span of this package. */
export const TRACER_NAME = 'fastify-ws-router'
export const MESSAGING_SYSTEM = 'fastify_ws_router'
/** Longest `traceparent` / `tracestate` value read from a frame (W3C: 55 and 512 characters). */
const MAX_TRACE_FIELD = 512

/** The trace fields of an envelope or a JSON-RPC request object: strings of bounded length, nothing else. */
const frameGetter: TextMapGetter = {
  keys: () => ['traceparent', 'tracestate'],
  get (carrier, key) {
    if (key !== 'traceparent' && key !== 'tracestate') return undefined
    const value = carrier[key]
    return typeof value === 'string' && value.length <= MAX_TRACE_FIELD ? value : undefined
  }
}

/** Await `work`; if it throws (a bug: the engine's fan-out and run report failures as results), end the span first. */
async function endOnThrow<R> (span: Span, work: () => Promise<R>, errorStatus: number): Promise<R> {
  try {
    return await work()
  } catch (err) {
    span.setStatus({ code: errorStatus, message: (err as Error)?.message })
    span.end()
    throw err
  }
}

/** A message span that is also the pipeline's outcome sink: the first outcome ends it. */
class MessageSpan implements SpanSink {
  private ended = false

  constructor (private readonly span: Span, private readonly errorStatus: number, private readonly jsonRpc: boolean) {}

  settle (ok: boolean, code?: string, message?: string): void {
    if (this.ended) return
    this.ended = true
    const span = this.span
    if (span.isRecording()) {
      if (ok) {
        span.setAttribute('wsr.outcome', 'ok')
      } else {
        const errorType = code ?? 'FAILED'
        span.setAttributes({ 'wsr.outcome': 'failed', 'error.type': errorType })
        if (this.jsonRpc && errorType.startsWith('jsonrpc:')) span.setAttribute('rpc.jsonrpc.error_code', Number(errorType.slice(8)))
        span.setStatus({ code: this.errorStatus, message })
      }
    }
    span.end()
  }
}

/** The router's tracing: built once when the `tracing` option is set. */
export class Tracing {
  /** The tracer, once a provider is there; null until then (and then every check is one lookup). */
  private tracer: Tracer | null = null
  /** The active span of each connection's upgrade request, if any: linked from its message spans. */
  private readonly upgrades = new WeakMap<TracedConnection, SpanContext>()

  /** @internal */
  constructor (private readonly api: OtelApi, private readonly config: TracingConfig) {
    if (config.tracerProvider !== undefined) this.tracer = config.tracerProvider.getTracer(TRACER_NAME) as Tracer
  }

  /**
   * Whether a tracer provider is registered. Until one is, the global
   * provider is the API's proxy with no delegate: asked once per message,
   * it answers without creating anything. The tracer found is kept.
   */
  enabled (): boolean {
    if (this.tracer !== null) return true
    const provider = this.api.trace.getTracerProvider() as TracerProviderLike & { getDelegateTracer?: (name: string) => Tracer | undefined }
    // Duck-typed: the proxy may come from another copy of the API (ESM and CommonJS builds).
    const tracer = typeof provider.getDelegateTracer === 'function'
      ? provider.getDelegateTracer(TRACER_NAME)
      : provider.getTracer(TRACER_NAME) as Tracer
    if (tracer === undefined) return false
    this.tracer = tracer
    return true
  }

  /** A connection was accepted: remember the upgrade request's span (the active one), to link it. */
  connectionOpened (conn: TracedConnection): void {
    const span = this.api.trace.getActiveSpan()
    if (span !== undefined) this.upgrades.set(conn, span.spanContext())
  }

  /**
   * Run an envelope's processing inside its `process <type>` span. The
   * frame's `traceparent` (and `tracestate`) make the parent, through the
   * app's registered propagator; invalid values are ignored.
   */
  envelope (conn: TracedConnection, type: string, id: string | number | undefined, frame: Readonly<Record<string, unknown>>, run: (sink: SpanSink) => void): void {
    const attributes = this.messageAttributes(conn, type, id)
    this.runMessage(conn, type, frame, attributes, false, run)
  }

  /** Run one JSON-RPC request object inside its `process <method>` span. */
  jsonRpc<R>(conn: TracedConnection, method: string, request: Readonly<Record<string, unknown>>, run: (sink: SpanSink) => R): R {
    const attributes = this.messageAttributes(conn, method, request.id as string | number | null | undefined)
    attributes['rpc.system'] = 'jsonrpc'
    attributes['rpc.method'] = method
    attributes['rpc.jsonrpc.version'] = '2.0'
    if (typeof request.id === 'string' || typeof request.id === 'number') attributes['rpc.jsonrpc.request_id'] = String(request.id)
    return this.runMessage(conn, method, request, attributes, true, run)
  }

  /** A fan-out from inside a handler (or anywhere): a `send <type>` span, child of the active one. */
  async fanout<R extends TracedFanout>(type: string, targetKind: string, send: () => Promise<R>): Promise<R> {
    const tracer = this.tracer
    if (tracer === null) return send()
    const { SpanKind, SpanStatusCode } = this.api
    const span = tracer.startSpan(`send ${type}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': MESSAGING_SYSTEM,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': type,
        'wsr.fanout.target': targetKind
      }
    })
    const result = await endOnThrow(span, send, SpanStatusCode.ERROR)
    if (span.isRecording()) {
      span.setAttributes({ 'wsr.fanout.targets': result.targets, 'wsr.fanout.delivered': result.delivered, 'wsr.outcome': result.ok ? 'ok' : 'failed' })
      if (!result.ok) {
        const errorType = result.reason ?? result.failed[0]?.reason ?? (result.remote?.error !== undefined ? 'REMOTE_FAILED' : 'FAILED')
        span.setAttribute('error.type', errorType)
        span.setStatus({ code: SpanStatusCode.ERROR })
      }
    }
    span.end()
    return result
  }

  /** One agent run: an `invoke_agent <name>` span around it, the runner inside its context. */
  async agentRun<R extends TracedRun>(conn: TracedConnection, runId: string, agentName: string, run: () => Promise<R>): Promise<R> {
    const tracer = this.tracer
    if (tracer === null) return run()
    const { context, trace, SpanKind, SpanStatusCode } = this.api
    const attributes: Attributes = {
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.name': agentName,
      'wsr.agent.run_id': runId
    }
    this.identify(conn, attributes)
    const span = tracer.startSpan(`invoke_agent ${agentName}`, { kind: SpanKind.INTERNAL, attributes })
    const outcome = await context.with(trace.setSpan(context.active(), span), endOnThrow<R>, undefined, span, run, SpanStatusCode.ERROR)
    if (span.isRecording()) {
      span.setAttribute('wsr.agent.status', outcome.status)
      if (outcome.error !== undefined) {
        span.setAttribute('error.type', outcome.error.code)
        span.setStatus({ code: SpanStatusCode.ERROR })
      }
    }
    span.end()
    return outcome
  }

  private messageAttributes (conn: TracedConnection, type: string, id: string | number | null | undefined): Attributes {
    const attributes: Attributes = {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': type
    }
    if (id !== undefined && id !== null) attributes['messaging.message.id'] = String(id)
    this.identify(conn, attributes)
    return attributes
  }

  /** Identifiers only where the app allowed them. */
  private identify (conn: TracedConnection, attributes: Attributes): void {
    if (this.config.connectionId) attributes['wsr.connection.id'] = conn.id
    if (this.config.userId) attributes['user.id'] = conn.userId
  }

  private runMessage<R>(conn: TracedConnection, name: string, carrier: Readonly<Record<string, unknown>>, attributes: Attributes, jsonRpc: boolean, run: (sink: SpanSink) => R): R {
    const { context, propagation, trace, SpanKind, SpanStatusCode } = this.api
    const active = context.active()
    const parent: Context = carrier.traceparent === undefined ? active : propagation.extract(active, carrier, frameGetter)
    const upgrade = this.upgrades.get(conn)
    const span = (this.tracer as Tracer).startSpan(`process ${name}`, {
      kind: SpanKind.CONSUMER,
      attributes,
      links: upgrade === undefined ? undefined : [{ context: upgrade }]
    }, parent)
    const sink = new MessageSpan(span, SpanStatusCode.ERROR, jsonRpc)
    return context.with(trace.setSpan(parent, span), run, undefined, sink)
  }
}
