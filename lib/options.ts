import { TypeCompiler } from '@sinclair/typebox/compiler'
import { resolveEnvironment, type EnvironmentName, type EnvironmentSource } from './environment.js'
import { FST_WSR_INVALID_OPTION, FST_WSR_UNKNOWN_OPTION } from './errors.js'
import type { RouterAdapter } from './adapter.js'
import { MemoryAdapter } from './adapters/memory.js'
import type { MetricsConfig } from './metrics.js'
import type { TracingConfig } from './tracing.js'
import {
  BuiltinsSchema,
  HealthSchema,
  MetricsSchema,
  TracingSchema,
  OptionsSchema,
  ResumeSchema,
  defaultsOf,
  optionProperties,
  type BuiltinSwitches,
  type HealthOption,
  type MetricsOption,
  type TracingOption,
  type OptionName,
  type OptionProperties,
  type RateLimitOption,
  type ResumeOption,
  type WsRouterOptions
} from './option-schema.js'
import type { ResumeStore } from './delivery/store.js'
import { MemoryResumeStore } from './delivery/memory-store.js'
import type { Static, TObject, TSchema } from '@sinclair/typebox'

/**
 * Plugin options → the frozen config: validated once at registration
 * against the one schema (lib/option-schema.ts), then, in this order, the
 * schema's defaults, the environment preset (lib/environment.ts) and the
 * given options, then the few options whose config value is worked out
 * (`resolvers`). A key the schema does not list is an error, never a silent
 * default.
 */

export type { Identity, Authenticate } from './identity.js'
export type {
  AuthorizeJoin,
  BuiltinSwitches,
  HealthOption,
  MetricsOption,
  TracingOption,
  OnUserMessage,
  RateLimitOption,
  ResumeOption,
  RouteProtocol,
  UnknownTypePolicy,
  WsRouterOptions
} from './option-schema.js'

/**
 * Fastify passes its own register options to every plugin. `prefix` is not
 * among those accepted: this plugin does not encapsulate, so a prefix would
 * be ignored; the route's whole path goes in `path`.
 */
const fastifyRegisterKeys = new Set(['logLevel', 'logSerializers'])

/**
 * A nested options object as config: every key present, the given values
 * over the nested schema's defaults; a key without a default may be
 * undefined.
 */
type NestedConfig<T extends TObject> = { readonly [K in keyof T['properties']]: ConfigValue<T['properties'][K]> }

/** The `health` option as config. */
export interface HealthConfig extends NestedConfig<typeof HealthSchema> {}

/**
 * The `resume` option as config (issue 12): its nested defaults, the store
 * (given, or the default memory store) and the agent grace (capped by the window).
 */
export interface ResumeConfig extends Omit<NestedConfig<typeof ResumeSchema>, 'store' | 'agentGraceMs'> {
  readonly store: ResumeStore
  readonly agentGraceMs: number
}

/** The `resume` option's constant nested defaults (the store and the agent grace are worked out). */
export const defaultResume = Object.freeze(defaultsOf(ResumeSchema.properties)) as Readonly<Omit<ResumeConfig, 'store' | 'agentGraceMs'>>

/**
 * Options whose config value is not the given value or its default as it
 * is: frozen copies, objects with their nested defaults, a default that
 * depends on another option. Each gets the given value (undefined when not
 * given) and all given options; it may throw `FST_WSR_INVALID_OPTION` for
 * what the schema cannot check. Their return types are the config's types.
 */
const resolvers = {
  allowedOrigins: (origins: string[] | undefined): readonly string[] | undefined =>
    origins === undefined ? undefined : Object.freeze([...origins]),
  rateLimit: (rateLimit: RateLimitOption | false | undefined): Readonly<RateLimitOption> | false =>
    rateLimit === undefined ? optionProperties.rateLimit.default : rateLimit === false ? false : Object.freeze({ ...rateLimit }),
  adapter: (adapter: RouterAdapter | undefined): RouterAdapter => adapter ?? new MemoryAdapter(),
  agentName: (name: string | undefined, given: WsRouterOptions): string =>
    name ?? (given.agent !== undefined && given.agent.name !== '' ? given.agent.name : 'agent'),
  builtins: (switches: BuiltinSwitches | undefined): Readonly<Required<BuiltinSwitches>> => nestedConfig(BuiltinsSchema, switches),
  metrics: (metrics: boolean | MetricsOption | undefined): MetricsConfig | false => switchableConfig(MetricsSchema, metrics),
  health: (health: boolean | HealthOption | undefined): HealthConfig | false => switchableConfig(HealthSchema, health),
  tracing: (tracing: boolean | TracingOption | undefined): TracingConfig | false => {
    // Duck-typed: a provider's getTracer lives on its prototype.
    if (typeof tracing === 'object' && tracing.tracerProvider !== undefined && typeof tracing.tracerProvider.getTracer !== 'function') {
      throw new FST_WSR_INVALID_OPTION('tracing.tracerProvider', 'must be an OpenTelemetry TracerProvider (with getTracer)')
    }
    return switchableConfig(TracingSchema, tracing)
  },
  resume: (resume: boolean | ResumeOption | undefined): ResumeConfig | false => resumeConfig(resume)
} satisfies { [K in OptionName]?: (value: WsRouterOptions[K], given: WsRouterOptions) => unknown }

type Resolved = { [K in keyof typeof resolvers]: ReturnType<(typeof resolvers)[K]> } & {
  /** The resolved environment name. */
  environment: EnvironmentName
  /** True when running on Google Cloud Run (`K_SERVICE` is set). */
  cloudRun: boolean
}

/**
 * The config value of an option that has no resolver: its own type, or
 * `undefined` too when it has no default of any kind.
 */
type ConfigValue<S extends TSchema> = S extends { default: unknown } | { preset: true } ? Static<S> : Static<S> | undefined

/** The resolved options (`app.wsRouter.config`): every option with its default or preset applied, frozen. */
export interface RouterConfig extends ConfigValues {}
type ConfigValues = {
  readonly [K in OptionName | keyof Resolved]: K extends keyof Resolved ? Resolved[K] : K extends OptionName ? ConfigValue<OptionProperties[K]> : never
}

/** The constant defaults of the options, from the schema's `default` keywords. */
export const defaultOptions: Readonly<Partial<RouterConfig>> = Object.freeze(defaultsOf(optionProperties))

const adapterMethods = ['addConnection', 'removeConnection', 'join', 'leave', 'roomsOf', 'isMember', 'roomCount', 'members', 'localTargets', 'publish', 'presence', 'onlineUsers', 'counts', 'close']

const checkOptions = TypeCompiler.Compile(OptionsSchema)
const knownKeys = new Set(Object.keys(optionProperties))

/**
 * Validate plugin options and build the frozen config, presets resolved.
 * Throws a coded `FST_WSR_*` error for the first problem found.
 */
export function buildConfig (options: WsRouterOptions = {}, env?: EnvironmentSource): RouterConfig {
  const given = validOptions(options)
  const environment = resolveEnvironment(given.environment, env)
  const merged: Record<string, unknown> = { ...defaultOptions, ...environment.preset, ...given }
  for (const [name, resolve] of Object.entries(resolvers)) {
    merged[name] = (resolve as (value: unknown, given: WsRouterOptions) => unknown)(given[name as OptionName], given)
  }
  merged.environment = environment.name
  merged.cloudRun = environment.cloudRun
  for (const name of knownKeys) if (!(name in merged)) merged[name] = undefined
  const config = merged as RouterConfig
  checkAcrossOptions(config, given)
  return Object.freeze(config)
}

/** The given options, without undefined values, checked against the schema. */
function validOptions (options: WsRouterOptions): WsRouterOptions {
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
  return defined as WsRouterOptions
}

/** What one option's schema cannot say: bounds relative to another option, an adapter's methods. */
function checkAcrossOptions (config: RouterConfig, given: WsRouterOptions): void {
  if (config.livenessWindowMs < config.heartbeatIntervalMs) {
    throw new FST_WSR_INVALID_OPTION('livenessWindowMs', `must be at least heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  }
  if (given.adapter !== undefined) {
    const missing = adapterMethods.filter((name) => typeof (given.adapter as unknown as Record<string, unknown>)[name] !== 'function')
    if (missing.length > 0) throw new FST_WSR_INVALID_OPTION('adapter', `missing methods: ${missing.join(', ')}`)
  }
  if (config.resume !== false && config.protocol === 'jsonrpc') {
    throw new FST_WSR_INVALID_OPTION('resume', 'needs envelope frames (connection_established, seq): not available with protocol \'jsonrpc\'')
  }
  if (config.maxBufferedBytes < config.highWaterMarkBytes) {
    throw new FST_WSR_INVALID_OPTION('maxBufferedBytes', `must be at least highWaterMarkBytes (${config.highWaterMarkBytes})`)
  }
}

function nestedConfig<T extends TObject> (schema: T, given: Static<T> | undefined): NestedConfig<T> {
  const config: Record<string, unknown> = {}
  const values = (given ?? {}) as Record<string, unknown>
  for (const [key, property] of Object.entries(schema.properties)) config[key] = values[key] ?? property.default
  return Object.freeze(config) as NestedConfig<T>
}

/** A `boolean | { … }` option as config: off (false) unless given; `true` is on with every nested default. */
function switchableConfig<T extends TObject> (schema: T, value: boolean | Static<T> | undefined): NestedConfig<T> | false {
  if (value === undefined || value === false) return false
  return nestedConfig(schema, value === true ? undefined : value)
}

const resumeStoreMethods = ['create', 'append', 'park', 'claim', 'read', 'drop', 'counts', 'close']

function resumeConfig (option: boolean | ResumeOption | undefined): ResumeConfig | false {
  const nested = switchableConfig(ResumeSchema, option)
  if (nested === false) return false
  const given = option === true ? {} : option as ResumeOption
  if (given.store !== undefined) {
    const missing = resumeStoreMethods.filter((name) => typeof (given.store as unknown as Record<string, unknown>)[name] !== 'function')
    if (missing.length > 0) throw new FST_WSR_INVALID_OPTION('resume.store', `missing methods: ${missing.join(', ')}`)
    // A store carries its own bounds: a bound given beside it would be silently ignored.
    for (const key of ['maxEvents', 'maxBytes'] as const) {
      if (given[key] !== undefined) throw new FST_WSR_INVALID_OPTION(`resume.${key}`, 'configures the default memory store; set it on the store you pass instead')
    }
  }
  return Object.freeze({
    ...nested,
    store: nested.store ?? new MemoryResumeStore({ maxEvents: nested.maxEvents, maxBytes: nested.maxBytes, maxSessions: nested.maxSessions }),
    agentGraceMs: Math.min(nested.agentGraceMs ?? nested.windowMs, nested.windowMs)
  })
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
