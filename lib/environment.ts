import { FST_WSR_INVALID_ENVIRONMENT } from './errors.js'
import type { EnvironmentPreset } from './option-schema.js'

/**
 * Environment detection and presets. This is the only module that reads
 * `process.env`, and it does so once, when the plugin is registered.
 */

export type EnvironmentName = 'development' | 'test' | 'staging' | 'production'

/** One environment's values of the options whose default is *preset*; the type is derived from the option schema. */
export type { EnvironmentPreset, LogLevelName } from './option-schema.js'

export interface ResolvedEnvironment {
  readonly name: EnvironmentName
  /** True when running on Google Cloud Run (`K_SERVICE` is set). */
  readonly cloudRun: boolean
  readonly preset: EnvironmentPreset
}

const SECOND = 1000
const MINUTE = 60 * SECOND

/**
 * Load balancers commonly cut idle connections after 30 s (Google's
 * front end, AWS ALB default is 60 s): production pings well before that.
 */
const development: EnvironmentPreset = Object.freeze({
  heartbeatIntervalMs: 30 * SECOND,
  livenessWindowMs: 45 * SECOND,
  exposeErrorMessages: true,
  validateOutbound: true,
  sendFailureLogLevel: 'warn',
  maxConnectionAgeMs: 0,
  shutdownGraceMs: 10 * SECOND
})

const production: EnvironmentPreset = Object.freeze({
  heartbeatIntervalMs: 25 * SECOND,
  livenessWindowMs: 37.5 * SECOND,
  exposeErrorMessages: false,
  validateOutbound: false,
  sendFailureLogLevel: 'info',
  maxConnectionAgeMs: 0,
  shutdownGraceMs: 10 * SECOND
})

export const presets: Readonly<Record<EnvironmentName, EnvironmentPreset>> = Object.freeze({
  development,
  // Tests see what developers see: messages, outbound checks.
  test: development,
  // Staging rehearses production.
  staging: production,
  production
})

/**
 * Whether the `?user=` demo identity is accepted: on a developer's machine
 * and in tests only. Staging is reachable by others, so it is left out.
 */
export function allowsDemoIdentity (name: EnvironmentName): boolean {
  return name === 'development' || name === 'test'
}

/**
 * Cloud Run cuts every request, WebSockets included, at the service's request
 * timeout (300 s unless configured) and gives 10 s between SIGTERM and SIGKILL.
 */
export const cloudRunOverrides: Readonly<Partial<EnvironmentPreset>> = Object.freeze({
  heartbeatIntervalMs: 25 * SECOND,
  livenessWindowMs: 37.5 * SECOND,
  maxConnectionAgeMs: 4.5 * MINUTE,
  shutdownGraceMs: 8 * SECOND
})

const aliases: Readonly<Record<string, EnvironmentName>> = Object.freeze({
  development: 'development',
  dev: 'development',
  local: 'development',
  test: 'test',
  testing: 'test',
  staging: 'staging',
  stage: 'staging',
  preview: 'staging',
  production: 'production',
  prod: 'production'
})

export interface EnvironmentSource {
  readonly NODE_ENV?: string | undefined
  readonly ENVIRONMENT?: string | undefined
  readonly K_SERVICE?: string | undefined
}

/**
 * Resolve the environment once: an explicit name wins, then `ENVIRONMENT`,
 * then `NODE_ENV`; nothing set means development. An explicit name that is
 * not known is a registration error; an unknown variable value falls back to
 * production, the safe side (generic error messages).
 */
function nonEmpty (value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

export function resolveEnvironment (
  explicit: string | undefined,
  source: EnvironmentSource = process.env
): ResolvedEnvironment {
  let name: EnvironmentName
  if (explicit !== undefined) {
    const known = aliases[explicit.toLowerCase()]
    if (known === undefined) throw new FST_WSR_INVALID_ENVIRONMENT(explicit)
    name = known
  } else {
    // An empty variable counts as unset.
    const raw = nonEmpty(source.ENVIRONMENT) ?? nonEmpty(source.NODE_ENV)
    name = raw === undefined ? 'development' : (aliases[raw.toLowerCase()] ?? 'production')
  }
  const cloudRun = typeof source.K_SERVICE === 'string' && source.K_SERVICE !== ''
  const preset = cloudRun ? Object.freeze({ ...presets[name], ...cloudRunOverrides }) : presets[name]
  return Object.freeze({ name, cloudRun, preset })
}
