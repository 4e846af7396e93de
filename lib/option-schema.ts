import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox'
import type { RouterAdapter } from './adapter.js'
import type { AgentRunner, UserMessage } from './agent-types.js'
import type { HandlerContext } from './context.js'
import type { Authenticate } from './identity.js'
import type { MetricsRegistry } from './metrics.js'
import type { TracerProviderLike } from './tracing.js'
import type { ResumeStore } from './delivery/store.js'

/**
 * The one options schema. Every plugin option is one entry of
 * `optionProperties`: its TypeBox schema (what registration accepts), its
 * doc comment (what users see in their editor), and where its value comes
 * from when it is not given. The public option types (`WsRouterOptions`,
 * `RateLimitOption`, …), the environment preset type and the config type
 * (`RouterConfig`, in options.ts) are derived from it, and so are the
 * defaults; docs/api.md's options table is checked against it
 * (test/options-doc.test.ts).
 *
 * Where a default comes from, as a keyword on the option's schema:
 * - `default`: a constant (JSON Schema's own keyword), see `withDefault`;
 * - `preset: true`: the environment preset, see `fromPreset` and environment.ts;
 * - `computedDefault`: worked out when the config is built, by the option's
 *   resolver in options.ts; its text is what docs/api.md says, see `computed`;
 * - none of them: the config holds `undefined` (an optional hook or list).
 *
 * This module only declares: it validates nothing and imports only types.
 */

/** A constant default, also what docs/api.md shows. Object defaults are frozen: they are shared by every config. */
function withDefault<T extends TSchema> (schema: T, value: Static<T>): T & { default: Static<T> } {
  return { ...schema, default: typeof value === 'object' && value !== null ? Object.freeze(value) : value }
}

/** The default comes from the environment preset (lib/environment.ts). */
function fromPreset<T extends TSchema> (schema: T): T & { preset: true } {
  return { ...schema, preset: true }
}

/** The default is computed when the config is built (a resolver in options.ts); `text` is the default as docs/api.md states it. */
function computed<T extends TSchema> (schema: T, text: string): T & { computedDefault: string } {
  return { ...schema, computedDefault: text }
}

/**
 * A function- or instance-valued option: validated by its JavaScript kind
 * (TypeBox `Function`/`Object`), typed as what users pass.
 */
function functionOf<F> (): TUnsafe<F> {
  return Type.Unsafe<F>(Type.Function([], Type.Unknown()))
}
function instanceOf<T> (): TUnsafe<T> {
  return Type.Unsafe<T>(Type.Object({}))
}

const PositiveInt = (maximum: number) => Type.Integer({ minimum: 1, maximum })
const Milliseconds = Type.Integer({ minimum: 1, maximum: 24 * 60 * 60 * 1000 })
const RoutePath = Type.String({ pattern: '^/', maxLength: 2048 })
const RoutePathOrOff = Type.Union([Type.Literal(false), RoutePath])
const SECOND = 1000
const KiB = 1024
const MiB = 1024 * KiB

const LogLevel = Type.Union([
  Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error'), Type.Literal('fatal')
])
export type LogLevelName = Static<typeof LogLevel>

const UnknownType = Type.Union([Type.Literal('ack'), Type.Literal('error'), Type.Literal('ignore')])
export type UnknownTypePolicy = Static<typeof UnknownType>

const Protocol = Type.Union([Type.Literal('auto'), Type.Literal('envelope'), Type.Literal('jsonrpc')])
export type RouteProtocol = Static<typeof Protocol>

export const RateLimitSchema = Type.Object({
  /** Sustained rate. */
  messagesPerSecond: Type.Number({ exclusiveMinimum: 0 }),
  /** Frames accepted at once before the rate applies. */
  burst: PositiveInt(1_000_000)
}, { additionalProperties: false })
export interface RateLimitOption extends Static<typeof RateLimitSchema> {}

const builtinOn = Type.Optional(withDefault(Type.Boolean(), true))
/** Each built-in message family, on unless switched off. */
export const BuiltinsSchema = Type.Object({
  connection: builtinOn,
  rooms: builtinOn,
  typing: builtinOn,
  userMessage: builtinOn,
  agent: builtinOn,
  clientError: builtinOn,
  batch: builtinOn
}, { additionalProperties: false })
export interface BuiltinSwitches extends Static<typeof BuiltinsSchema> {}

export const MetricsSchema = Type.Object({
  /** A prom-client `Registry`; default prom-client's global `register`. */
  registry: Type.Optional(instanceOf<MetricsRegistry>()),
  /** Prefix of every metric name. Default `wsr_`. */
  prefix: Type.Optional(withDefault(Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', maxLength: 64 }), 'wsr_')),
  /** Route serving the registry's exposition, or false when the app serves it. Default `/metrics`. */
  path: Type.Optional(withDefault(RoutePathOrOff, '/metrics'))
}, { additionalProperties: false })
export interface MetricsOption extends Static<typeof MetricsSchema> {}

export const HealthSchema = Type.Object({
  /** Liveness route, or false for none. Default `/health/live`. */
  livenessPath: Type.Optional(withDefault(RoutePathOrOff, '/health/live')),
  /** Readiness route, or false for none. Default `/health/ready`. */
  readinessPath: Type.Optional(withDefault(RoutePathOrOff, '/health/ready'))
}, { additionalProperties: false })
export interface HealthOption extends Static<typeof HealthSchema> {}

export const TracingSchema = Type.Object({
  /** The tracer provider to use; default the global one (`trace.getTracerProvider()`). */
  tracerProvider: Type.Optional(instanceOf<TracerProviderLike>()),
  /** Record the connection id on spans as `wsr.connection.id`. Default false. */
  connectionId: Type.Optional(withDefault(Type.Boolean(), false)),
  /** Record the user id on spans as `user.id`. Default false: it may be personal data. */
  userId: Type.Optional(withDefault(Type.Boolean(), false))
}, { additionalProperties: false })
export type TracingOption = Static<typeof TracingSchema>

/** Resumable delivery (issue 12, docs/delivery.md): the `resume` option's object form. */
export const ResumeSchema = Type.Object({
  /** Where sessions and their events wait. Default: a `MemoryResumeStore` with `maxEvents`, `maxBytes`, `maxSessions`. */
  store: Type.Optional(computed(instanceOf<ResumeStore>(), 'a `MemoryResumeStore` with `maxEvents`, `maxBytes`, `maxSessions`')),
  /** How long a parked session waits for its client. Default 120 000 ms. */
  windowMs: Type.Optional(withDefault(Milliseconds, 2 * 60 * SECOND)),
  /** Events kept per session by the default memory store (oldest trimmed first). Default 1 000. */
  maxEvents: Type.Optional(withDefault(PositiveInt(1_000_000), 1000)),
  /** Bytes of frames kept per session by the default memory store. Default 1 MiB. */
  maxBytes: Type.Optional(withDefault(PositiveInt(1024 * MiB), 1 * MiB)),
  /** Parked sessions per instance; beyond, the one parked longest ago is ended. Default 10 000. */
  maxSessions: Type.Optional(withDefault(PositiveInt(10_000_000), 10_000)),
  /** Replayed frames per second per resuming connection. Default 2 000. */
  replayRatePerSecond: Type.Optional(withDefault(PositiveInt(1_000_000), 2000)),
  /** How long an agent run keeps running for a parked session (capped by `windowMs`). Default: `windowMs`. */
  agentGraceMs: Type.Optional(computed(Type.Integer({ minimum: 0, maximum: 24 * 60 * 60 * SECOND }), '`windowMs`')),
  /** A store call (claim, read) that takes longer fails the resume with `unavailable`. Default 5 000 ms. */
  storeTimeoutMs: Type.Optional(withDefault(Milliseconds, 5 * SECOND))
}, { additionalProperties: false })
export interface ResumeOption extends Static<typeof ResumeSchema> {}

/** Decide whether a connection may join a room; false refuses with `FORBIDDEN`. */
export type AuthorizeJoin = (ctx: HandlerContext<unknown>, room: string) => boolean | Promise<boolean>

export type OnUserMessage = (ctx: HandlerContext<unknown>, message: UserMessage) => UserMessage | undefined | void | Promise<UserMessage | undefined | void>

/**
 * Every option, in the order docs/api.md lists them. Adding an option is
 * adding one entry here (see docs/architecture.md, "Where to add an option").
 */
export const optionProperties = {
  /** URL path of the WebSocket route. Default `/ws`. */
  path: withDefault(RoutePath, '/ws'),
  /** `development`, `test`, `staging` or `production`. Default: from `ENVIRONMENT`, then `NODE_ENV`. */
  environment: computed(Type.String({ minLength: 1 }), 'resolved from the process environment'),
  /** Largest inbound frame, enforced by ws (close 1009). Default 64 KiB. */
  maxPayloadBytes: withDefault(PositiveInt(100 * MiB), 64 * KiB),
  /** Largest outbound frame; a larger send fails with `TOO_LARGE`. Default 1 MiB. */
  maxOutboundBytes: withDefault(PositiveInt(100 * MiB), 1 * MiB),
  /** Deepest JSON nesting accepted in a frame. Default 32. */
  maxDepth: withDefault(PositiveInt(1000), 32),
  /** How long a send may wait for the socket buffer to drain. Default 10 000 ms. */
  sendTimeoutMs: withDefault(Milliseconds, 10 * SECOND),
  /** Socket buffer size above which sends wait for drain. Default 256 KiB. */
  highWaterMarkBytes: withDefault(PositiveInt(1024 * MiB), 256 * KiB),
  /** What a frame of an unregistered type gets. Default `ack`. */
  unknownType: withDefault(UnknownType, 'ack'),
  /** Failed frames in a row before the connection is closed (1008 when all were the client's fault, else 1011). Default 5. */
  maxConsecutiveErrors: withDefault(PositiveInt(1_000_000), 5),
  /** Time a handler may take before `HANDLER_TIMEOUT`. Default 30 000 ms. */
  handlerTimeoutMs: withDefault(Milliseconds, 30 * SECOND),
  /** Preset override: ping interval. */
  heartbeatIntervalMs: fromPreset(Milliseconds),
  /** Preset override: silence after which a connection is not alive. */
  livenessWindowMs: fromPreset(Milliseconds),
  /** Preset override: send unexpected errors' messages to clients. */
  exposeErrorMessages: fromPreset(Type.Boolean()),
  /** Preset override: check replies against their reply schema. */
  validateOutbound: fromPreset(Type.Boolean()),
  /** Preset override: log level of failed sends. */
  sendFailureLogLevel: fromPreset(LogLevel),
  /** Preset override: maximum connection age, 0 for none. */
  maxConnectionAgeMs: fromPreset(Type.Integer({ minimum: 0, maximum: 7 * 24 * 60 * 60 * 1000 })),
  /** Preset override: time given to clients on `app.close()`. */
  shutdownGraceMs: fromPreset(Milliseconds),
  /** Identify the client before the upgrade; `null` refuses it with 401. */
  authenticate: functionOf<Authenticate>(),
  /** Accept clients without `authenticate` in production. Default false. */
  allowAnonymous: withDefault(Type.Boolean(), false),
  /** Time `authenticate` may take before the upgrade is refused with 500. Default 10 000 ms. */
  authTimeoutMs: withDefault(Milliseconds, 10 * SECOND),
  /** Origins allowed to connect (`https://app.example.com`, `https://*.example.com`). Default: any. */
  allowedOrigins: Type.Array(Type.String({ minLength: 1 }), { maxItems: 1000 }),
  /** Refuse requests without an Origin header (browsers only). Default false. */
  requireOrigin: withDefault(Type.Boolean(), false),
  /** Open connections on this router, 0 for no limit; over it: HTTP 503. Default 10 000. */
  maxConnections: withDefault(Type.Integer({ minimum: 0 }), 10_000),
  /** Open connections per user, 0 for no limit; over it: HTTP 429. Default 20. */
  maxConnectionsPerUser: withDefault(Type.Integer({ minimum: 0 }), 20),
  /** Hard cap of a connection's send buffer; a connection stuck over it is closed with 1013. Default 1 MiB. */
  maxBufferedBytes: withDefault(PositiveInt(4 * 1024 * MiB), 1 * MiB),
  /** Inbound token bucket per connection, or false. Default 100 per second, burst 200. */
  rateLimit: withDefault(Type.Union([Type.Literal(false), RateLimitSchema]), { messagesPerSecond: 100, burst: 200 }),
  /** Handlers running at once per connection; beyond: `OVERLOADED` and reading pauses. Default 32. */
  maxInFlight: withDefault(PositiveInt(100_000), 32),
  /** Close a connection that sent no frame for this long (1001), 0 for never. Default 0. */
  idleTimeoutMs: withDefault(Type.Integer({ minimum: 0, maximum: 7 * 24 * 60 * 60 * 1000 }), 0),
  /** Rooms one connection may be in. Default 100. */
  maxRoomsPerConnection: withDefault(PositiveInt(100_000), 100),
  /** May this connection join this room? Default: yes. */
  authorizeJoin: functionOf<AuthorizeJoin>(),
  /** Where users and rooms live; default: this process's memory. Checked for the adapter's methods in options.ts. */
  adapter: computed(instanceOf<RouterAdapter>(), 'a new `MemoryAdapter`'),
  /** Repeated `typing_started` of a user in a room within this time is not re-broadcast. Default 2 000 ms. */
  typingThrottleMs: withDefault(Type.Integer({ minimum: 0, maximum: 60 * 60 * 1000 }), 2 * SECOND),
  /** A `typing_started` without a stop expires (broadcast `typing: false`) after this. Default 5 000 ms. */
  typingTimeoutMs: withDefault(Milliseconds, 5 * SECOND),
  /** Longest `user_message` text, in characters. Default 4 000. */
  maxMessageChars: withDefault(PositiveInt(1024 * 1024), 4000),
  /** Persist, enrich (return the message) or refuse (throw a `WsRouterError`) a user message before fan-out. */
  onUserMessage: functionOf<OnUserMessage>(),
  /** The agent runner behind `start_agent`; without it `start_agent` answers `NOT_CONFIGURED`. */
  agent: functionOf<AgentRunner>(),
  /** Name reported in `agent_started`. Default: the runner function's name, else `agent`. */
  agentName: computed(Type.String({ minLength: 1, maxLength: 128 }), "the runner function's name, else `'agent'`"),
  /** Agent runs at once per connection; beyond: `OVERLOADED`. Default 3. */
  maxConcurrentRuns: withDefault(PositiveInt(1000), 3),
  /** Most messages in one `batch`; beyond: `BATCH_TOO_LARGE`. Default 50. */
  maxBatchSize: withDefault(PositiveInt(10_000), 50),
  /** Accept the old system's message type names (`chat`, `agent_request`, ...). Default false. */
  legacyAliases: withDefault(Type.Boolean(), false),
  /** `auto` (envelopes and JSON-RPC 2.0), `envelope` or `jsonrpc` only. Default `auto`. */
  protocol: withDefault(Protocol, 'auto'),
  /** Switch built-in handlers off: `{ typing: false }`. All on by default. */
  builtins: computed(BuiltinsSchema, 'all `true`'),
  /**
   * Prometheus metrics through prom-client (an optional peer dependency,
   * loaded only when this is set). `true`: prom-client's global registry,
   * prefix `wsr_`, served on `GET /metrics`. Default false.
   */
  metrics: withDefault(Type.Union([Type.Boolean(), MetricsSchema]), false),
  /**
   * Liveness and readiness routes. `true`: `GET /health/live` and
   * `GET /health/ready`. Default false.
   */
  health: withDefault(Type.Union([Type.Boolean(), HealthSchema]), false),
  /**
   * OpenTelemetry spans through `@opentelemetry/api` (an optional peer
   * dependency, loaded only when this is set): one per handled message, per
   * fan-out, per agent run. Without a registered SDK nothing is recorded
   * and nothing is paid. Default false.
   */
  tracing: withDefault(Type.Union([Type.Boolean(), TracingSchema]), false),
  /**
   * Resumable delivery (issue 12, docs/delivery.md): must-deliver events are
   * numbered (`seq`), a closed connection is parked for `windowMs`, and a
   * client that reconnects with its token gets every missed event or an
   * explicit gap. `true`: the memory store with the defaults. Default false.
   */
  resume: withDefault(Type.Union([Type.Boolean(), ResumeSchema]), false)
}

export type OptionProperties = typeof optionProperties
export type OptionName = keyof OptionProperties

/**
 * Registration accepts any subset of the options. Unknown keys are let
 * through here and refused by name in options.ts (`FST_WSR_UNKNOWN_OPTION`),
 * which also lets Fastify's own register options pass.
 */
export const OptionsSchema = Type.Partial(Type.Object(optionProperties, { additionalProperties: true }))

/**
 * Options accepted by `app.register(wsRouter, options)`. Every key is optional.
 * (The derived types are declared as interfaces so that editors and compile
 * errors name them instead of spelling out every member.)
 */
export interface WsRouterOptions extends Static<typeof OptionsSchema> {}

/** The options whose default is the environment preset's. */
export type PresetOptionName = { [K in OptionName]: OptionProperties[K] extends { preset: true } ? K : never }[OptionName]

/** One environment's values of the preset options (lib/environment.ts holds them). */
export interface EnvironmentPreset extends PresetValues {}
type PresetValues = { readonly [K in PresetOptionName]: Static<OptionProperties[K]> }

/** The names of the options of an object schema whose schema has the given keyword. */
export function optionsWith (properties: Record<string, TSchema>, keyword: 'default' | 'preset' | 'computedDefault'): string[] {
  return Object.keys(properties).filter((name) => (properties[name] as Record<string, unknown>)[keyword] !== undefined)
}

/** The constant defaults of an object schema's properties (`default` keywords), by name. */
export function defaultsOf (properties: Record<string, TSchema>): Record<string, unknown> {
  const defaults: Record<string, unknown> = {}
  for (const name of optionsWith(properties, 'default')) defaults[name] = (properties[name] as { default: unknown }).default
  return defaults
}
