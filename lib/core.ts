import type { FastifyBaseLogger } from 'fastify'
import type { RouterAdapter } from './adapter.js'
import { AdmissionCounter } from './admission.js'
import type { Connection } from './connection.js'
import { DeadlineSweeper } from './deadlines.js'
import { WireErrorCode } from './errors.js'
import type { PipelineObserver } from './observer.js'
import type { Tracing } from './tracing.js'
import type { RateLimitConfig } from './rate-limit.js'
import type { SendLimits } from './send.js'
import type { ConnectionLimits } from './connection.js'
import { RouterStats } from './stats.js'
import type { ResumeEngine } from './delivery/resume.js'

/**
 * A logger method a send failure is logged at (`sendFailureLogLevel`).
 * Spelled out here rather than imported from the options: environment.ts
 * and option-schema.ts import the handler context for the types of their
 * callbacks, and the context imports the connection part: a cycle.
 */
type LogMethodName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

/**
 * What the engine's parts read of the router's config (a `RouterConfig` is
 * one). Declared here, narrow, so that no part imports lib/options.ts,
 * which imports the handler context for the types of its callbacks.
 */
export interface CoreConfig extends SendLimits, ConnectionLimits {
  readonly adapter: RouterAdapter
  readonly environment: string
  readonly sendFailureLogLevel: LogMethodName
  readonly exposeErrorMessages: boolean
  readonly validateOutbound: boolean
  readonly protocol: 'auto' | 'envelope' | 'jsonrpc'
  readonly unknownType: 'ack' | 'error' | 'ignore'
  readonly rateLimit: Readonly<RateLimitConfig> | false
  readonly maxPayloadBytes: number
  readonly maxDepth: number
  readonly maxInFlight: number
  readonly maxConsecutiveErrors: number
  readonly handlerTimeoutMs: number
  readonly heartbeatIntervalMs: number
  readonly idleTimeoutMs: number
  readonly maxConnectionAgeMs: number
  readonly shutdownGraceMs: number
}

/**
 * The state one router's parts share: its config, counters, logger,
 * adapter, connection table, deadline sweeper and heartbeat timer. Plain
 * data with no behaviour: each job (outbound sends, closing, liveness,
 * fan-out, shutdown, socket events, the frame path) is a module of
 * functions that take the core as their first argument, so no part needs
 * the facade (`WsRouter`) or another part's owner.
 */
export class RouterCore {
  readonly config: CoreConfig
  readonly log: FastifyBaseLogger
  readonly stats = new RouterStats()
  readonly adapter: RouterAdapter
  /** Open connections (and those closing, until their socket's `close`), by id. */
  readonly connections = new Map<string, Connection>()
  /** One deadline sweeper for every async handler and JSON-RPC call. */
  readonly sweeper: DeadlineSweeper
  /** Admitted clients: open connections plus upgrades under way. */
  readonly admissions = new AdmissionCounter()
  /** Handler durations and fan-out sizes go here when metrics are on; null otherwise. */
  observer: PipelineObserver | null = null
  /** Spans per message, fan-out and agent run when the `tracing` option is set; null otherwise. */
  tracing: Tracing | null = null
  /** Also enforce `maxPayloadBytes` here: the app's shared ws server allows larger frames. */
  enforcePayloadLimit = false
  /** Built-ins that keep per-connection state release it here, once per connection. */
  readonly closeListeners: Array<(conn: Connection) => void> = []
  /**
   * Resumable delivery (issue 12, lib/delivery/): numbered events, parked
   * sessions, resumes; null with the `resume` option off. Set by the engine,
   * which builds the `DeliveryHost` it calls back through.
   */
  delivery: ResumeEngine | null = null
  /** The one heartbeat timer (lib/liveness.ts); runs while a connection is open. */
  heartbeatTimer: NodeJS.Timeout | null = null
  /** Shutdown started: no new upgrades, every client closed with 1001. */
  closing = false
  /** The RATE_LIMITED refusal's message and payload, built once: shedding load must stay cheap. */
  readonly rateLimitMessage: string
  readonly rateLimitPayloadJson: string

  constructor (config: CoreConfig, log: FastifyBaseLogger) {
    this.config = config
    this.log = log
    this.adapter = config.adapter
    this.sweeper = new DeadlineSweeper(config.handlerTimeoutMs)
    const limit = config.rateLimit
    this.rateLimitMessage = limit === false ? '' : `Rate limit exceeded (${limit.messagesPerSecond} messages per second, burst ${limit.burst})`
    this.rateLimitPayloadJson = JSON.stringify({ code: WireErrorCode.RATE_LIMITED, message: this.rateLimitMessage })
  }
}
