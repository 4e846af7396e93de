import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { resolveEnvironment, type EnvironmentName, type EnvironmentSource, type LogLevelName } from './environment.js'
import { FST_WSR_INVALID_OPTION, FST_WSR_UNKNOWN_OPTION } from './errors.js'
import type { RouterAdapter } from './adapter.js'
import { MemoryAdapter } from './adapters/memory.js'
import type { HandlerContext } from './context.js'
import type { AgentRunner, UserMessage } from './agent-types.js'
import type { MetricsConfig, MetricsRegistry } from './metrics.js'
import type { ResumeStore } from './delivery/store.js'
import { MemoryResumeStore } from './delivery/memory-store.js'

/**
 * Plugin options: validated once at registration into a frozen config.
 * A key that is not listed here is an error, never a silent default.
 */

export type UnknownTypePolicy = 'ack' | 'error' | 'ignore'

import type { Authenticate } from './identity.js'
export type { Identity, Authenticate } from './identity.js'

/** Decide whether a connection may join a room; false refuses with `FORBIDDEN`. */
export type AuthorizeJoin = (ctx: HandlerContext<unknown>, room: string) => boolean | Promise<boolean>

export interface RateLimitOption {
  /** Sustained rate. */
  messagesPerSecond: number
  /** Frames accepted at once before the rate applies. */
  burst: number
}

const PositiveInt = (maximum: number) => Type.Integer({ minimum: 1, maximum })
const Milliseconds = Type.Integer({ minimum: 1, maximum: 24 * 60 * 60 * 1000 })
const LogLevel = Type.Union(['trace', 'debug', 'info', 'warn', 'error', 'fatal'].map((level) => Type.Literal(level)))

const OptionsSchema = Type.Partial(Type.Object({
  path: Type.String({ pattern: '^/', maxLength: 2048 }),
  environment: Type.String({ minLength: 1 }),
  maxPayloadBytes: PositiveInt(100 * 1024 * 1024),
  maxOutboundBytes: PositiveInt(100 * 1024 * 1024),
  maxDepth: PositiveInt(1000),
  sendTimeoutMs: Milliseconds,
  highWaterMarkBytes: PositiveInt(1024 * 1024 * 1024),
  unknownType: Type.Union([Type.Literal('ack'), Type.Literal('error'), Type.Literal('ignore')]),
  maxConsecutiveErrors: PositiveInt(1_000_000),
  handlerTimeoutMs: Milliseconds,
  heartbeatIntervalMs: Milliseconds,
  livenessWindowMs: Milliseconds,
  exposeErrorMessages: Type.Boolean(),
  validateOutbound: Type.Boolean(),
  sendFailureLogLevel: LogLevel,
  maxConnectionAgeMs: Type.Integer({ minimum: 0, maximum: 7 * 24 * 60 * 60 * 1000 }),
  shutdownGraceMs: Milliseconds,
  authenticate: Type.Function([], Type.Unknown()),
  allowAnonymous: Type.Boolean(),
  authTimeoutMs: Milliseconds,
  allowedOrigins: Type.Array(Type.String({ minLength: 1 }), { maxItems: 1000 }),
  requireOrigin: Type.Boolean(),
  maxConnections: Type.Integer({ minimum: 0 }),
  maxConnectionsPerUser: Type.Integer({ minimum: 0 }),
  maxBufferedBytes: PositiveInt(4 * 1024 * 1024 * 1024),
  rateLimit: Type.Union([
    Type.Literal(false),
    Type.Object({ messagesPerSecond: Type.Number({ exclusiveMinimum: 0 }), burst: PositiveInt(1_000_000) }, { additionalProperties: false })
  ]),
  maxInFlight: PositiveInt(100_000),
  idleTimeoutMs: Type.Integer({ minimum: 0, maximum: 7 * 24 * 60 * 60 * 1000 }),
  maxRoomsPerConnection: PositiveInt(100_000),
  authorizeJoin: Type.Function([], Type.Unknown()),
  typingThrottleMs: Type.Integer({ minimum: 0, maximum: 60 * 60 * 1000 }),
  typingTimeoutMs: Milliseconds,
  maxMessageChars: PositiveInt(1024 * 1024),
  onUserMessage: Type.Function([], Type.Unknown()),
  agent: Type.Function([], Type.Unknown()),
  agentName: Type.String({ minLength: 1, maxLength: 128 }),
  maxConcurrentRuns: PositiveInt(1000),
  maxBatchSize: PositiveInt(10_000),
  legacyAliases: Type.Boolean(),
  protocol: Type.Union([Type.Literal('auto'), Type.Literal('envelope'), Type.Literal('jsonrpc')]),
  builtins: Type.Object({
    connection: Type.Optional(Type.Boolean()),
    rooms: Type.Optional(Type.Boolean()),
    typing: Type.Optional(Type.Boolean()),
    userMessage: Type.Optional(Type.Boolean()),
    agent: Type.Optional(Type.Boolean()),
    clientError: Type.Optional(Type.Boolean()),
    batch: Type.Optional(Type.Boolean())
  }, { additionalProperties: false }),
  // Checked by duck typing below: an adapter's methods live on its prototype.
  adapter: Type.Object({}),
  metrics: Type.Union([Type.Boolean(), Type.Object({
    registry: Type.Optional(Type.Object({})),
    prefix: Type.Optional(Type.String({ pattern: '^[a-zA-Z_:][a-zA-Z0-9_:]*$', maxLength: 64 })),
    path: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^/', maxLength: 2048 })]))
  }, { additionalProperties: false })]),
  // Resume (issue 12): one block, in the current style, to be ported to the one schema.
  resume: Type.Union([Type.Boolean(), Type.Object({
    store: Type.Optional(Type.Object({})),
    windowMs: Type.Optional(Milliseconds),
    maxEvents: Type.Optional(PositiveInt(1_000_000)),
    maxBytes: Type.Optional(PositiveInt(1024 * 1024 * 1024)),
    maxSessions: Type.Optional(PositiveInt(10_000_000)),
    replayRatePerSecond: Type.Optional(PositiveInt(1_000_000)),
    agentGraceMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 24 * 60 * 60 * 1000 })),
    storeTimeoutMs: Type.Optional(Milliseconds)
  }, { additionalProperties: false })]),
  health: Type.Union([Type.Boolean(), Type.Object({
    livenessPath: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^/', maxLength: 2048 })])),
    readinessPath: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^/', maxLength: 2048 })]))
  }, { additionalProperties: false })])
}, { additionalProperties: true }))

/**
 * Fastify passes its own register options to every plugin. `prefix` is not
 * among those accepted: this plugin does not encapsulate, so a prefix would
 * be ignored; the route's whole path goes in `path`.
 */
const fastifyRegisterKeys = new Set(['logLevel', 'logSerializers'])

type OptionValues = Static<typeof OptionsSchema>

/** Options accepted by `app.register(wsRouter, options)`. Every key is optional. */
export interface WsRouterOptions {
  /** URL path of the WebSocket route. Default `/ws`. */
  path?: string
  /** `development`, `test`, `staging` or `production`. Default: from `ENVIRONMENT`, then `NODE_ENV`. */
  environment?: EnvironmentName | string
  /** Largest inbound frame, enforced by ws (close 1009). Default 64 KiB. */
  maxPayloadBytes?: number
  /** Largest outbound frame; a larger send fails with `TOO_LARGE`. Default 1 MiB. */
  maxOutboundBytes?: number
  /** Deepest JSON nesting accepted in a frame. Default 32. */
  maxDepth?: number
  /** How long a send may wait for the socket buffer to drain. Default 10 000 ms. */
  sendTimeoutMs?: number
  /** Socket buffer size above which sends wait for drain. Default 256 KiB. */
  highWaterMarkBytes?: number
  /** What a frame of an unregistered type gets. Default `ack`. */
  unknownType?: UnknownTypePolicy
  /** Failed frames in a row before the connection is closed with 1011. Default 5. */
  maxConsecutiveErrors?: number
  /** Time a handler may take before `HANDLER_TIMEOUT`. Default 30 000 ms. */
  handlerTimeoutMs?: number
  /** Preset override: ping interval. */
  heartbeatIntervalMs?: number
  /** Preset override: silence after which a connection is not alive. */
  livenessWindowMs?: number
  /** Preset override: send unexpected errors' messages to clients. */
  exposeErrorMessages?: boolean
  /** Preset override: check replies against their reply schema. */
  validateOutbound?: boolean
  /** Preset override: log level of failed sends. */
  sendFailureLogLevel?: LogLevelName
  /** Preset override: maximum connection age, 0 for none. */
  maxConnectionAgeMs?: number
  /** Preset override: time given to clients on `app.close()`. */
  shutdownGraceMs?: number
  /** Identify the client before the upgrade; `null` refuses it with 401. */
  authenticate?: Authenticate
  /** Accept clients without `authenticate` in production. Default false. */
  allowAnonymous?: boolean
  /** Time `authenticate` may take before the upgrade is refused with 500. Default 10 000 ms. */
  authTimeoutMs?: number
  /** Origins allowed to connect (`https://app.example.com`, `https://*.example.com`). Default: any. */
  allowedOrigins?: string[]
  /** Refuse requests without an Origin header (browsers only). Default false. */
  requireOrigin?: boolean
  /** Open connections on this router, 0 for no limit; over it: HTTP 503. Default 10 000. */
  maxConnections?: number
  /** Open connections per user, 0 for no limit; over it: HTTP 429. Default 20. */
  maxConnectionsPerUser?: number
  /** Hard cap of a connection's send buffer; a connection stuck over it is closed with 1013. Default 1 MiB. */
  maxBufferedBytes?: number
  /** Inbound token bucket per connection, or false. Default 100 per second, burst 200. */
  rateLimit?: RateLimitOption | false
  /** Handlers running at once per connection; beyond: `OVERLOADED` and reading pauses. Default 32. */
  maxInFlight?: number
  /** Close a connection that sent no frame for this long (1001), 0 for never. Default 0. */
  idleTimeoutMs?: number
  /** Rooms one connection may be in. Default 100. */
  maxRoomsPerConnection?: number
  /** May this connection join this room? Default: yes. */
  authorizeJoin?: AuthorizeJoin
  /** Where users and rooms live; default: this process's memory. */
  adapter?: RouterAdapter
  /** Repeated `typing_started` of a user in a room within this time is not re-broadcast. Default 2 000 ms. */
  typingThrottleMs?: number
  /** A `typing_started` without a stop expires (broadcast `typing: false`) after this. Default 5 000 ms. */
  typingTimeoutMs?: number
  /** Longest `user_message` text, in characters. Default 4 000. */
  maxMessageChars?: number
  /** Persist, enrich (return the message) or refuse (throw a `WsRouterError`) a user message before fan-out. */
  onUserMessage?: OnUserMessage
  /** The agent runner behind `start_agent`; without it `start_agent` answers `NOT_CONFIGURED`. */
  agent?: AgentRunner
  /** Name reported in `agent_started`. Default: the runner function's name, else `agent`. */
  agentName?: string
  /** Agent runs at once per connection; beyond: `OVERLOADED`. Default 3. */
  maxConcurrentRuns?: number
  /** Most messages in one `batch`; beyond: `BATCH_TOO_LARGE`. Default 50. */
  maxBatchSize?: number
  /** Accept the old system's message type names (`chat`, `agent_request`, ...). Default false. */
  legacyAliases?: boolean
  /** `auto` (envelopes and JSON-RPC 2.0), `envelope` or `jsonrpc` only. Default `auto`. */
  protocol?: RouteProtocol
  /** Switch built-in handlers off: `{ typing: false }`. All on by default. */
  builtins?: BuiltinSwitches
  /**
   * Prometheus metrics through prom-client (an optional peer dependency,
   * loaded only when this is set). `true`: prom-client's global registry,
   * prefix `wsr_`, served on `GET /metrics`. Default false.
   */
  metrics?: boolean | MetricsOption
  /**
   * Liveness and readiness routes. `true`: `GET /health/live` and
   * `GET /health/ready`. Default false.
   */
  health?: boolean | HealthOption
  /**
   * Resumable delivery (issue 12, docs/delivery.md): must-deliver events are
   * numbered (`seq`), a closed connection is parked for `windowMs`, and a
   * client that reconnects with its token gets every missed event or an
   * explicit gap. `true`: the memory store with the defaults. Default false.
   */
  resume?: boolean | ResumeOption
}

export interface ResumeOption {
  /** Where sessions' events wait. Default: a `MemoryResumeStore` with `maxEvents`, `maxBytes`, `maxSessions`. */
  store?: ResumeStore
  /** How long a parked session waits for its client. Default 120 000 ms. */
  windowMs?: number
  /** Events kept per session by the default memory store (oldest trimmed first). Default 1 000. */
  maxEvents?: number
  /** Bytes of frames kept per session by the default memory store. Default 1 MiB. */
  maxBytes?: number
  /** Parked sessions per instance; beyond, the one parked longest ago is ended. Default 10 000. */
  maxSessions?: number
  /** Replayed frames per second per resuming connection. Default 2 000. */
  replayRatePerSecond?: number
  /** How long an agent run keeps running for a parked session (capped by `windowMs`). Default: `windowMs`. */
  agentGraceMs?: number
  /** A store call (claim, read) that takes longer fails the resume with `unavailable`. Default 5 000 ms. */
  storeTimeoutMs?: number
}

export interface ResumeConfig {
  readonly store: ResumeStore
  readonly windowMs: number
  readonly maxSessions: number
  readonly replayRatePerSecond: number
  readonly agentGraceMs: number
  readonly storeTimeoutMs: number
}

export interface MetricsOption {
  /** A prom-client `Registry`; default prom-client's global `register`. */
  registry?: MetricsRegistry
  /** Prefix of every metric name. Default `wsr_`. */
  prefix?: string
  /** Route serving the registry's exposition, or false when the app serves it. Default `/metrics`. */
  path?: string | false
}

export interface HealthOption {
  /** Liveness route, or false for none. Default `/health/live`. */
  livenessPath?: string | false
  /** Readiness route, or false for none. Default `/health/ready`. */
  readinessPath?: string | false
}

export interface HealthConfig {
  readonly livenessPath: string | false
  readonly readinessPath: string | false
}

export type RouteProtocol = 'auto' | 'envelope' | 'jsonrpc'

export interface BuiltinSwitches {
  connection?: boolean
  rooms?: boolean
  typing?: boolean
  userMessage?: boolean
  agent?: boolean
  clientError?: boolean
  batch?: boolean
}

export type OnUserMessage = (ctx: HandlerContext<unknown>, message: UserMessage) => UserMessage | undefined | void | Promise<UserMessage | undefined | void>

export interface RouterConfig {
  readonly path: string
  readonly environment: EnvironmentName
  readonly cloudRun: boolean
  readonly maxPayloadBytes: number
  readonly maxOutboundBytes: number
  readonly maxDepth: number
  readonly sendTimeoutMs: number
  readonly highWaterMarkBytes: number
  readonly unknownType: UnknownTypePolicy
  readonly maxConsecutiveErrors: number
  readonly handlerTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly livenessWindowMs: number
  readonly exposeErrorMessages: boolean
  readonly validateOutbound: boolean
  readonly sendFailureLogLevel: LogLevelName
  readonly maxConnectionAgeMs: number
  readonly shutdownGraceMs: number
  readonly authenticate: Authenticate | undefined
  readonly allowAnonymous: boolean
  readonly authTimeoutMs: number
  readonly allowedOrigins: readonly string[] | undefined
  readonly requireOrigin: boolean
  readonly maxConnections: number
  readonly maxConnectionsPerUser: number
  readonly maxBufferedBytes: number
  readonly rateLimit: Readonly<RateLimitOption> | false
  readonly maxInFlight: number
  readonly idleTimeoutMs: number
  readonly maxRoomsPerConnection: number
  readonly authorizeJoin: AuthorizeJoin | undefined
  readonly adapter: RouterAdapter
  readonly typingThrottleMs: number
  readonly typingTimeoutMs: number
  readonly maxMessageChars: number
  readonly onUserMessage: OnUserMessage | undefined
  readonly agent: AgentRunner | undefined
  readonly agentName: string
  readonly maxConcurrentRuns: number
  readonly maxBatchSize: number
  readonly legacyAliases: boolean
  readonly protocol: RouteProtocol
  readonly builtins: Readonly<Required<BuiltinSwitches>>
  readonly metrics: MetricsConfig | false
  readonly health: HealthConfig | false
  readonly resume: ResumeConfig | false
}

export const defaultOptions = Object.freeze({
  path: '/ws',
  maxPayloadBytes: 64 * 1024,
  maxOutboundBytes: 1024 * 1024,
  maxDepth: 32,
  sendTimeoutMs: 10_000,
  highWaterMarkBytes: 256 * 1024,
  unknownType: 'ack' as UnknownTypePolicy,
  maxConsecutiveErrors: 5,
  handlerTimeoutMs: 30_000,
  allowAnonymous: false,
  authTimeoutMs: 10_000,
  requireOrigin: false,
  maxConnections: 10_000,
  maxConnectionsPerUser: 20,
  maxBufferedBytes: 1024 * 1024,
  rateLimit: Object.freeze({ messagesPerSecond: 100, burst: 200 }) as Readonly<RateLimitOption> | false,
  maxInFlight: 32,
  idleTimeoutMs: 0,
  maxRoomsPerConnection: 100,
  typingThrottleMs: 2000,
  typingTimeoutMs: 5000,
  maxMessageChars: 4000,
  maxConcurrentRuns: 3,
  maxBatchSize: 50,
  legacyAliases: false,
  protocol: 'auto' as RouteProtocol
})

const allBuiltins: Readonly<Required<BuiltinSwitches>> = Object.freeze({
  connection: true, rooms: true, typing: true, userMessage: true, agent: true, clientError: true, batch: true
})

const adapterMethods = ['addConnection', 'removeConnection', 'join', 'leave', 'roomsOf', 'isMember', 'roomCount', 'members', 'localTargets', 'publish', 'presence', 'onlineUsers', 'counts', 'close']

const checkOptions = TypeCompiler.Compile(OptionsSchema)
const knownKeys = new Set(Object.keys(OptionsSchema.properties))

/**
 * Validate plugin options and build the frozen config, presets resolved.
 * Throws a coded `FST_WSR_*` error for the first problem found.
 */
export function buildConfig (options: WsRouterOptions = {}, env?: EnvironmentSource): RouterConfig {
  if (options === null || typeof options !== 'object') {
    throw new FST_WSR_INVALID_OPTION('options', 'must be an object')
  }
  for (const key of Object.keys(options)) {
    if (!knownKeys.has(key) && !fastifyRegisterKeys.has(key)) throw new FST_WSR_UNKNOWN_OPTION(key)
  }
  const defined: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && knownKeys.has(key)) defined[key] = value
  }
  const firstError = checkOptions.Errors(defined).First()
  if (firstError !== undefined) {
    const name = firstError.path.replace(/^\//, '') || 'options'
    throw new FST_WSR_INVALID_OPTION(name, `${firstError.message} (got ${describe(firstError.value)})`)
  }
  const given = defined as Partial<OptionValues>
  const environment = resolveEnvironment(given.environment, env)
  const preset = environment.preset
  const config: RouterConfig = {
    ...defaultOptions,
    ...preset,
    ...given,
    environment: environment.name,
    cloudRun: environment.cloudRun,
    authenticate: given.authenticate,
    allowedOrigins: given.allowedOrigins === undefined ? undefined : Object.freeze([...given.allowedOrigins]),
    rateLimit: given.rateLimit === undefined || given.rateLimit === false ? (given.rateLimit ?? defaultOptions.rateLimit) : Object.freeze({ ...given.rateLimit }),
    adapter: options.adapter ?? new MemoryAdapter(),
    agentName: given.agentName ?? (options.agent?.name !== undefined && options.agent.name !== '' ? options.agent.name : 'agent'),
    builtins: Object.freeze({ ...allBuiltins, ...given.builtins }),
    metrics: metricsConfig(options.metrics),
    health: healthConfig(given.health),
    resume: resumeConfig(options.resume)
  } as RouterConfig
  if (config.livenessWindowMs < config.heartbeatIntervalMs) {
    throw new FST_WSR_INVALID_OPTION('livenessWindowMs', `must be at least heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  }
  if (options.adapter !== undefined) {
    const missing = adapterMethods.filter((name) => typeof (options.adapter as unknown as Record<string, unknown>)[name] !== 'function')
    if (missing.length > 0) throw new FST_WSR_INVALID_OPTION('adapter', `missing methods: ${missing.join(', ')}`)
  }
  if (config.maxBufferedBytes < config.highWaterMarkBytes) {
    throw new FST_WSR_INVALID_OPTION('maxBufferedBytes', `must be at least highWaterMarkBytes (${config.highWaterMarkBytes})`)
  }
  return Object.freeze(config)
}

function metricsConfig (option: boolean | MetricsOption | undefined): MetricsConfig | false {
  if (option === undefined || option === false) return false
  const given = option === true ? {} : option
  return Object.freeze({ registry: given.registry, prefix: given.prefix ?? 'wsr_', path: given.path ?? '/metrics' })
}

export const defaultResume = Object.freeze({
  windowMs: 120_000,
  maxEvents: 1000,
  maxBytes: 1024 * 1024,
  maxSessions: 10_000,
  replayRatePerSecond: 2000,
  storeTimeoutMs: 5000
})

const resumeStoreMethods = ['create', 'append', 'park', 'claim', 'read', 'drop', 'counts', 'close']

function resumeConfig (option: boolean | ResumeOption | undefined): ResumeConfig | false {
  if (option === undefined || option === false) return false
  const given = option === true ? {} : option
  if (given.store !== undefined) {
    const missing = resumeStoreMethods.filter((name) => typeof (given.store as unknown as Record<string, unknown>)[name] !== 'function')
    if (missing.length > 0) throw new FST_WSR_INVALID_OPTION('resume.store', `missing methods: ${missing.join(', ')}`)
    // A store carries its own bounds: a bound given beside it would be silently ignored.
    for (const key of ['maxEvents', 'maxBytes'] as const) {
      if (given[key] !== undefined) throw new FST_WSR_INVALID_OPTION(`resume.${key}`, 'configures the default memory store; set it on the store you pass instead')
    }
  }
  const windowMs = given.windowMs ?? defaultResume.windowMs
  const maxSessions = given.maxSessions ?? defaultResume.maxSessions
  const store = given.store ?? new MemoryResumeStore({
    maxEvents: given.maxEvents ?? defaultResume.maxEvents,
    maxBytes: given.maxBytes ?? defaultResume.maxBytes,
    maxSessions
  })
  return Object.freeze({
    store,
    windowMs,
    maxSessions,
    replayRatePerSecond: given.replayRatePerSecond ?? defaultResume.replayRatePerSecond,
    agentGraceMs: Math.min(given.agentGraceMs ?? windowMs, windowMs),
    storeTimeoutMs: given.storeTimeoutMs ?? defaultResume.storeTimeoutMs
  })
}

function healthConfig (option: boolean | HealthOption | undefined): HealthConfig | false {
  if (option === undefined || option === false) return false
  const given = option === true ? {} : option
  return Object.freeze({ livenessPath: given.livenessPath ?? '/health/live', readinessPath: given.readinessPath ?? '/health/ready' })
}

function describe (value: unknown): string {
  if (typeof value === 'function') return 'a function'
  try {
    const text = JSON.stringify(value)
    return text === undefined ? String(value) : text.slice(0, 80)
  } catch {
    return typeof value
  }
}
