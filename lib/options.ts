import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyRequest } from 'fastify'
import { resolveEnvironment, type EnvironmentName, type EnvironmentSource, type LogLevelName } from './environment.js'
import { FST_WSR_INVALID_OPTION, FST_WSR_UNKNOWN_OPTION } from './errors.js'

/**
 * Plugin options: validated once at registration into a frozen config.
 * A key that is not listed here is an error, never a silent default.
 */

export type UnknownTypePolicy = 'ack' | 'error' | 'ignore'

/** What `authenticate` resolves to for an admitted client. */
export interface Identity {
  userId: string
  [claim: string]: unknown
}

export type Authenticate = (request: FastifyRequest) => Identity | null | undefined | Promise<Identity | null | undefined>

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
  allowAnonymous: Type.Boolean()
}, { additionalProperties: true }))

/** Fastify passes its own register options to every plugin. */
const fastifyRegisterKeys = new Set(['prefix', 'logLevel', 'logSerializers'])

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
}

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
  allowAnonymous: false
})

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
    authenticate: given.authenticate
  } as RouterConfig
  if (config.livenessWindowMs < config.heartbeatIntervalMs) {
    throw new FST_WSR_INVALID_OPTION('livenessWindowMs', `must be at least heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  }
  return Object.freeze(config)
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
