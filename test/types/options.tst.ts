// Type tests (tstyche) for issue 9, "one options schema": the option and
// config types are derived from the schema in lib/option-schema.ts, and what
// a user sees must be what the hand-written interfaces gave before the
// derivation. Each public type is pinned here to the exact shape it had
// (written out once more on purpose: this is the reference the derived
// types are compared with). `toBe` is TypeScript's identity relation:
// optional and readonly modifiers, literal unions and `any` all count.
import { describe, expect, test } from 'tstyche'
import Fastify, { type FastifyRequest } from 'fastify'
import wsRouter, {
  MemoryAdapter,
  type AgentRunner,
  type Authenticate,
  type AuthorizeJoin,
  type BuiltinSwitches,
  type EnvironmentName,
  type EnvironmentPreset,
  type HandlerContext,
  type HealthConfig,
  type HealthOption,
  type Identity,
  type MetricsConfig,
  type MetricsOption,
  type MetricsRegistry,
  type OnUserMessage,
  type RateLimitOption,
  type ResumeConfig,
  type ResumeOption,
  type ResumeStore,
  type RouteProtocol,
  type RouterAdapter,
  type RouterConfig,
  type TracerProviderLike,
  type TracingConfig,
  type TracingOption,
  type UnknownTypePolicy,
  type UserMessage,
  type WsRouterOptions
} from '../../lib/index.js'

type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

describe('option types keep their shape', () => {
  test('WsRouterOptions: every key optional, literal unions kept', () => {
    expect<WsRouterOptions>().type.toBe<{
      path?: string
      environment?: EnvironmentName | string
      maxPayloadBytes?: number
      maxOutboundBytes?: number
      maxDepth?: number
      sendTimeoutMs?: number
      highWaterMarkBytes?: number
      unknownType?: UnknownTypePolicy
      maxConsecutiveErrors?: number
      handlerTimeoutMs?: number
      heartbeatIntervalMs?: number
      livenessWindowMs?: number
      exposeErrorMessages?: boolean
      validateOutbound?: boolean
      sendFailureLogLevel?: LogLevel
      maxConnectionAgeMs?: number
      shutdownGraceMs?: number
      authenticate?: Authenticate
      allowAnonymous?: boolean
      authTimeoutMs?: number
      allowedOrigins?: string[]
      requireOrigin?: boolean
      maxConnections?: number
      maxConnectionsPerUser?: number
      maxBufferedBytes?: number
      rateLimit?: RateLimitOption | false
      maxInFlight?: number
      idleTimeoutMs?: number
      maxRoomsPerConnection?: number
      authorizeJoin?: AuthorizeJoin
      adapter?: RouterAdapter
      typingThrottleMs?: number
      typingTimeoutMs?: number
      maxMessageChars?: number
      onUserMessage?: OnUserMessage
      agent?: AgentRunner
      agentName?: string
      maxConcurrentRuns?: number
      maxBatchSize?: number
      legacyAliases?: boolean
      protocol?: RouteProtocol
      builtins?: BuiltinSwitches
      metrics?: boolean | MetricsOption
      health?: boolean | HealthOption
      tracing?: boolean | TracingOption
      resume?: boolean | ResumeOption
    }>()
  })

  test('the nested option types', () => {
    expect<RateLimitOption>().type.toBe<{ messagesPerSecond: number, burst: number }>()
    expect<BuiltinSwitches>().type.toBe<{
      connection?: boolean
      rooms?: boolean
      typing?: boolean
      userMessage?: boolean
      agent?: boolean
      clientError?: boolean
      batch?: boolean
    }>()
    expect<MetricsOption>().type.toBe<{ registry?: MetricsRegistry, prefix?: string, path?: string | false }>()
    expect<HealthOption>().type.toBe<{ livenessPath?: string | false, readinessPath?: string | false }>()
    expect<TracingOption>().type.toBe<{ tracerProvider?: TracerProviderLike, connectionId?: boolean, userId?: boolean }>()
    // Issue 12: the resume option (ported into the one schema).
    expect<ResumeOption>().type.toBe<{
      store?: ResumeStore
      windowMs?: number
      maxEvents?: number
      maxBytes?: number
      maxSessions?: number
      replayRatePerSecond?: number
      agentGraceMs?: number
      storeTimeoutMs?: number
    }>()
    expect<UnknownTypePolicy>().type.toBe<'ack' | 'error' | 'ignore'>()
    expect<RouteProtocol>().type.toBe<'auto' | 'envelope' | 'jsonrpc'>()
  })

  test('the function-valued options keep their signatures', () => {
    expect<Authenticate>().type.toBe<(request: FastifyRequest, token: string | undefined) => Identity | null | undefined | Promise<Identity | null | undefined>>()
    expect<AuthorizeJoin>().type.toBe<(ctx: HandlerContext<unknown>, room: string) => boolean | Promise<boolean>>()
    expect<OnUserMessage>().type.toBe<(ctx: HandlerContext<unknown>, message: UserMessage) => UserMessage | undefined | void | Promise<UserMessage | undefined | void>>()
  })

  test('RouterConfig: every key present and readonly, resolved types', () => {
    expect<RouterConfig>().type.toBe<{
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
      readonly sendFailureLogLevel: LogLevel
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
      readonly tracing: TracingConfig | false
      readonly resume: ResumeConfig | false
    }>()
    expect<HealthConfig>().type.toBe<{ readonly livenessPath: string | false, readonly readinessPath: string | false }>()
    expect<ResumeConfig>().type.toBe<{
      readonly store: ResumeStore
      readonly windowMs: number
      readonly maxEvents: number
      readonly maxBytes: number
      readonly maxSessions: number
      readonly replayRatePerSecond: number
      readonly agentGraceMs: number
      readonly storeTimeoutMs: number
    }>()
  })

  test('EnvironmentPreset: the preset-valued options, readonly', () => {
    expect<EnvironmentPreset>().type.toBe<{
      readonly heartbeatIntervalMs: number
      readonly livenessWindowMs: number
      readonly exposeErrorMessages: boolean
      readonly validateOutbound: boolean
      readonly sendFailureLogLevel: LogLevel
      readonly maxConnectionAgeMs: number
      readonly shutdownGraceMs: number
    }>()
  })
})

describe('inference where users meet the options', () => {
  const app = Fastify()

  test('no option is required', () => {
    expect(app.register(wsRouter)).type.not.toRaiseError()
    expect(app.register(wsRouter, {})).type.not.toRaiseError()
  })

  test('a literal union refuses a value outside it', () => {
    expect(app.register(wsRouter, { unknownType: 'error', protocol: 'jsonrpc', sendFailureLogLevel: 'debug' })).type.not.toRaiseError()
    expect(app.register(wsRouter, { unknownType: 'drop' })).type.toRaiseError()
    expect(app.register(wsRouter, { protocol: 'socket.io' })).type.toRaiseError()
    expect(app.register(wsRouter, { sendFailureLogLevel: 'loud' })).type.toRaiseError()
  })

  test('nested options are checked', () => {
    expect(app.register(wsRouter, { rateLimit: { messagesPerSecond: 10, burst: 20 } })).type.not.toRaiseError()
    expect(app.register(wsRouter, { rateLimit: false })).type.not.toRaiseError()
    expect(app.register(wsRouter, { rateLimit: true })).type.toRaiseError()
    expect(app.register(wsRouter, { rateLimit: { messagesPerSecond: 10 } })).type.toRaiseError()
    expect(app.register(wsRouter, { builtins: { typing: false } })).type.not.toRaiseError()
    expect(app.register(wsRouter, { builtins: { typo: false } })).type.toRaiseError()
    expect(app.register(wsRouter, { metrics: { prefix: 'app_', path: false }, health: { readinessPath: '/ready' } })).type.not.toRaiseError()
  })

  test('function- and instance-valued options infer their parameters', () => {
    app.register(wsRouter, {
      authenticate: (request, token) => {
        expect(request).type.toBe<FastifyRequest>()
        expect(token).type.toBe<string | undefined>()
        return token === undefined ? null : { userId: token }
      },
      authorizeJoin: (ctx, room) => {
        expect(ctx).type.toBe<HandlerContext<unknown>>()
        expect(room).type.toBe<string>()
        return true
      },
      onUserMessage: (_ctx, message) => {
        expect(message).type.toBe<UserMessage>()
      },
      adapter: new MemoryAdapter()
    })
    expect(app.register(wsRouter, { authenticate: () => 'alice' })).type.toRaiseError()
    expect(app.register(wsRouter, { adapter: {} })).type.toRaiseError()
  })

  test('config values are typed, never any', () => {
    const config = app.wsRouter.config
    expect(config.unknownType).type.toBe<UnknownTypePolicy>()
    expect(config.maxPayloadBytes).type.toBe<number>()
    expect(config.adapter).type.toBe<RouterAdapter>()
    expect(config.authenticate).type.toBe<Authenticate | undefined>()
    expect(config.rateLimit).type.toBe<Readonly<RateLimitOption> | false>()
  })
})
