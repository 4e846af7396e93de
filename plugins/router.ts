import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, LogLevel } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { ConnectionStatus } from '../lib/connection.js'
import { FST_WSR_ALREADY_REGISTERED, FST_WSR_ANONYMOUS_IN_PRODUCTION, FST_WSR_NO_ROUTER, FST_WSR_WEBSOCKET_CONFLICT } from '../lib/errors.js'
import { registerHeartbeat } from '../lib/handlers/heartbeat.js'
import { registerPing } from '../lib/handlers/ping.js'
import { registerBuiltins } from '../lib/handlers/index.js'
import { registerBatch } from '../lib/batch.js'
import { registerLegacyAliases } from '../lib/handlers/aliases.js'
import { compileOrigins, extractToken, refusal, RefusalReason, selectProtocol, type Refusal } from '../lib/admission.js'
import { allowsDemoIdentity } from '../lib/environment.js'
import { buildConfig, type Identity, type RouterConfig, type WsRouterOptions } from '../lib/options.js'
import { WsRouter } from '../lib/router.js'
import { kEngine, kRequestConnection } from '../lib/symbols.js'
import { redactNotFoundUrl, redactRequestLogs, redactUrl } from '../lib/redact.js'
import { registerHealth, registerMetrics, registerTracing } from './observability.js'
import type { Connection } from '../lib/connection.js'

/**
 * The Fastify plugin: it only wires lib/ into an app. Options are validated
 * here, once, so `await app.ready()` rejects with a coded error.
 */

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The router registered in this context (and seen by its children).
     * Read where no router is registered, it throws `FST_WSR_NO_ROUTER`,
     * never returns undefined.
     */
    readonly wsRouter: WsRouter
  }
  interface FastifyRequest {
    /**
     * The connection checker of a WebSocket request: state, liveness and
     * writability read from the socket itself.
     */
    checkConnection: () => ConnectionStatus
  }
}

const kRouter = Symbol('fastify-ws-router.router')
const kRedacting = Symbol('fastify-ws-router.redacting')
const kIdentity = Symbol('fastify-ws-router.identity')
const kAccepted = Symbol('fastify-ws-router.accepted')

interface RouterRequest extends FastifyRequest {
  [kRequestConnection]?: Connection
}

/** Admission state lives on the raw request, which the hook and the handler share. */
interface RouterRawRequest extends IncomingMessage {
  [kIdentity]?: Identity
  [kAccepted]?: boolean
}

const NO_SOCKET: ConnectionStatus = Object.freeze({
  state: 'CLOSED',
  connected: false,
  alive: false,
  writable: false,
  bufferedAmount: 0,
  // No socket, so the peer was never seen: null reads the same in code and in JSON.
  lastSeenMs: null
})

function checkConnection (this: FastifyRequest): ConnectionStatus {
  const conn = (this as RouterRequest)[kRequestConnection]
  return conn === undefined ? NO_SOCKET : conn.status()
}

function noop (): void {}

/** Fastify's own register options, which it hands to the plugin with the others. */
interface FastifyRegisterLogOptions {
  logLevel?: LogLevel
  logSerializers?: Record<string, (value: unknown) => unknown>
}

interface RouterScope extends FastifyInstance {
  [kRouter]?: WsRouter
  [kRedacting]?: boolean
}

function readRouter (this: RouterScope): WsRouter {
  const router = this[kRouter]
  if (router === undefined) throw new FST_WSR_NO_ROUTER()
  return router
}

/**
 * `wsRouter` is typed as present on every instance, so every instance of the
 * app answers it: the router of the nearest context that registered one, or
 * FST_WSR_NO_ROUTER. Fastify makes a child context with Object.create(parent),
 * so one getter on the root instance serves every context, and a router
 * registered in a child context shadows its parent's.
 */
function installRouterAccessor (root: FastifyInstance): void {
  if (Object.hasOwn(root, 'wsRouter')) return
  Object.defineProperty(root, 'wsRouter', { get: readRouter, enumerable: false, configurable: false })
}

/** The app's root instance: Fastify builds each child context with Object.create(parent). */
function rootOf (fastify: FastifyInstance): FastifyInstance {
  let root: object = fastify
  for (let parent = Object.getPrototypeOf(root) as object | null; parent !== null && parent !== Object.prototype; parent = Object.getPrototypeOf(parent) as object | null) {
    root = parent
  }
  return root as FastifyInstance
}

/**
 * Tokens out of every log line of the app, once per app: the request
 * serializer (all routes, 404s included) and the default 404's own line.
 */
function redactAppLogs (root: FastifyInstance): void {
  if ((root as RouterScope)[kRedacting] === true) return
  Object.defineProperty(root, kRedacting, { value: true })
  redactRequestLogs(root.log)
  root.addHook('onRequest', redactNotFoundUrl)
}

const demoUserId = /^[\w.@-]{1,64}$/

/** In development and test, without `authenticate`: `?user=` names the client (demo identity). */
function anonymousIdentity (request: FastifyRequest, config: RouterConfig): Identity {
  if (allowsDemoIdentity(config.environment)) {
    const user = (request.query as Record<string, unknown> | undefined)?.user
    if (typeof user === 'string' && demoUserId.test(user)) return { userId: user }
  }
  return { userId: `anon-${randomUUID()}` }
}

function isIdentity (value: unknown): value is Identity {
  if (value === null || typeof value !== 'object') return false
  const userId = (value as { userId?: unknown }).userId
  return typeof userId === 'string' && userId.length > 0 && userId.length <= 256
}

/** The request as logged: the `token` query parameter never reaches a log line. */
function redactedRequest (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

async function wsRouterPlugin (fastify: FastifyInstance, options: WsRouterOptions): Promise<void> {
  const registered = (fastify as RouterScope)[kRouter]
  if (registered !== undefined && Object.hasOwn(fastify, kRouter)) throw new FST_WSR_ALREADY_REGISTERED(registered.config.path)
  const config = buildConfig(options)
  // fastify-plugin shares the parent's context, so Fastify applies neither
  // register option here: the router applies them itself, as Fastify does for
  // an encapsulated plugin (its own log lines and its route's request logs).
  const { logLevel, logSerializers } = options as FastifyRegisterLogOptions
  const log = logLevel === undefined ? fastify.log : fastify.log.child({}, { level: logLevel })
  if (config.environment === 'production' && config.authenticate === undefined && !config.allowAnonymous) {
    throw new FST_WSR_ANONYMOUS_IN_PRODUCTION()
  }
  const root = rootOf(fastify)
  redactAppLogs(root)
  const originAllowed = config.allowedOrigins === undefined ? undefined : compileOrigins(config.allowedOrigins)
  if (config.environment === 'production' && originAllowed === undefined) {
    log.warn({ path: config.path }, 'fastify-ws-router: allowedOrigins is not set, so any web page may open a WebSocket to this server with its visitors\' credentials')
  }
  const router = new WsRouter(config, log)
  // The wiring reaches the engine behind the facade; apps see the facade only.
  const engine = router[kEngine]
  registerPing(engine.builtins)
  registerHeartbeat(engine.builtins)
  registerBuiltins(engine.builtins)
  if (config.builtins.batch) registerBatch(engine)
  if (config.legacyAliases) registerLegacyAliases(engine.builtins)

  // The drain starts in preClose (no new upgrades, 1001 to every client) but is
  // awaited in onClose: Fastify bounds preClose hooks by its pluginTimeout
  // (10 s by default, the default shutdownGraceMs too), onClose hooks not, so
  // a stalled peer can never make app.close() reject with AVV_ERR_READY_TIMEOUT.
  let draining: Promise<void> | undefined
  const startDrain = (): Promise<void> => {
    draining ??= engine.close()
    return draining
  }
  fastify.addHook('onClose', async () => { await startDrain() })

  if (fastify.hasDecorator('websocketServer')) {
    // @fastify/websocket was registered by the app: its ws server may allow
    // larger frames than this router, so the router checks each frame too.
    const maxPayload = (fastify.websocketServer.options as { maxPayload?: number }).maxPayload ?? 100 * 1024 * 1024
    engine.enforcePayloadLimit = maxPayload > config.maxPayloadBytes
    fastify.addHook('preClose', function startRouterDrain (done) {
      startDrain().catch(noop)
      done()
    })
  } else {
    // Two @fastify/websocket instances on one server would both route every upgrade.
    if (fastify.server.listenerCount('upgrade') > 0) throw new FST_WSR_WEBSOCKET_CONFLICT()
    await fastify.register(websocket, {
      options: { maxPayload: config.maxPayloadBytes, handleProtocols: selectProtocol },
      errorHandler: onSocketError,
      preClose: function (done) {
        startDrain().catch(noop)
        // Stops accepting; ws emits its 'close' once the drain has closed every client.
        this.websocketServer.close()
        done()
      }
    })
  }

  installRouterAccessor(root)
  Object.defineProperty(fastify, kRouter, { value: router, enumerable: false })
  if (config.metrics !== false) await registerMetrics(fastify, engine, config.metrics)
  if (config.health !== false) registerHealth(fastify, engine, config.health)
  if (config.tracing !== false) registerTracing(engine, config.tracing)
  if (!fastify.hasRequestDecorator('checkConnection')) fastify.decorateRequest('checkConnection', checkConnection)

  fastify.addHook('onReady', async () => {
    engine.lock()
    // A broker adapter connects here; with requireBroker it rejects, and so does ready().
    await config.adapter.attach?.(engine)
  })

  /** Refuse with an HTTP answer, before any upgrade; counted by reason. */
  function refuse (reply: FastifyReply, refused: Refusal): FastifyReply {
    engine.stats.countRefusal(refused.reason)
    reply.log.info({ statusCode: refused.statusCode, reason: refused.reason, environment: config.environment }, 'websocket upgrade refused')
    if (refused.statusCode === 503) reply.header('retry-after', '1')
    return reply.code(refused.statusCode).send({ statusCode: refused.statusCode, code: refused.reason, error: refused.message })
  }

  async function identify (request: FastifyRequest): Promise<Identity | Refusal> {
    const authenticate = config.authenticate
    if (authenticate === undefined) return anonymousIdentity(request, config)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<Refusal>((resolve) => {
      timer = setTimeout(resolve, config.authTimeoutMs, refusal(500, RefusalReason.AUTH_TIMEOUT, 'Authentication did not answer in time'))
    })
    try {
      const outcome = await Promise.race([Promise.resolve(authenticate(request, extractToken(request))), timeout])
      if (isIdentity(outcome)) return withinExpiry(request, outcome)
      if (outcome !== null && typeof outcome === 'object' && 'reason' in outcome) {
        request.log.error({ authTimeoutMs: config.authTimeoutMs, environment: config.environment }, 'websocket authenticate timed out')
        return outcome
      }
      return refusal(401, RefusalReason.AUTH_REQUIRED, 'Valid credentials are required')
    } catch (err) {
      const statusCode = (err as { statusCode?: unknown }).statusCode
      if (typeof statusCode === 'number' && statusCode >= 500) {
        request.log.error({ err, environment: config.environment }, 'websocket authenticate failed')
        return refusal(500, RefusalReason.AUTH_ERROR, 'Authentication failed on the server')
      }
      const code = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 ? statusCode : 401
      return refusal(code, RefusalReason.AUTH_FAILED, code === 403 ? 'Access denied' : 'Invalid credentials')
    } finally {
      clearTimeout(timer)
    }
  }

  /** An identity's `expiresAt`: a number of ms since the epoch, still in the future. */
  function withinExpiry (request: FastifyRequest, identity: Identity): Identity | Refusal {
    const expiresAt = identity.expiresAt
    if (expiresAt === undefined) return identity
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
      request.log.error({ expiresAt: typeof expiresAt, environment: config.environment }, 'websocket authenticate returned an expiresAt that is not a number of ms since the epoch')
      return refusal(500, RefusalReason.AUTH_ERROR, 'Authentication failed on the server')
    }
    if (expiresAt <= Date.now()) return refusal(401, RefusalReason.AUTH_FAILED, 'Credentials have expired')
    return identity
  }

  fastify.route({
    method: 'GET',
    url: config.path,
    websocket: true,
    ...(logLevel === undefined ? {} : { logLevel }),
    logSerializers: { ...logSerializers, req: redactedRequest },
    onRequest: async function admit (request: FastifyRequest, reply: FastifyReply) {
      // Plain HTTP requests to the path get @fastify/websocket's 404; only upgrades take a slot.
      if (!request.ws) return
      if (engine.closing) return refuse(reply, refusal(503, RefusalReason.SHUTTING_DOWN, 'Server is shutting down'))
      const origin = request.headers.origin
      if (originAllowed !== undefined && origin !== undefined && !originAllowed(origin)) {
        return refuse(reply, refusal(403, RefusalReason.ORIGIN_FORBIDDEN, 'Origin not allowed'))
      }
      if (origin === undefined && config.requireOrigin) {
        return refuse(reply, refusal(403, RefusalReason.ORIGIN_REQUIRED, 'An Origin header is required'))
      }
      if (config.maxConnections > 0 && engine.admissions.size >= config.maxConnections) {
        return refuse(reply, refusal(503, RefusalReason.SERVER_FULL, 'Server has reached its connection limit'))
      }
      const identity = await identify(request)
      if (!isIdentity(identity)) return refuse(reply, identity)
      // The client may have gone while authenticate ran: nothing to admit.
      const rawSocket = request.raw.socket as Socket | undefined
      if (rawSocket?.destroyed === true) return reply
      if (config.maxConnectionsPerUser > 0 && engine.admissions.countFor(identity.userId) >= config.maxConnectionsPerUser) {
        return refuse(reply, refusal(429, RefusalReason.USER_CONNECTION_LIMIT, `At most ${config.maxConnectionsPerUser} connections per user`))
      }
      if (config.maxConnections > 0 && engine.admissions.size >= config.maxConnections) {
        return refuse(reply, refusal(503, RefusalReason.SERVER_FULL, 'Server has reached its connection limit'))
      }
      // Reserved until the socket closes; released early if the upgrade never completes.
      engine.admissions.add(identity.userId)
      const raw = request.raw as RouterRawRequest
      raw[kIdentity] = identity
      // (app.injectWS requests have no socket.)
      rawSocket?.once('close', () => {
        if (raw[kAccepted] !== true) engine.admissions.remove(identity.userId)
      })
    },
    handler: function wsHandler (socket: WebSocket, request: FastifyRequest) {
      const raw = request.raw as RouterRawRequest
      const identity = raw[kIdentity] as Identity
      raw[kAccepted] = true
      // Resume (issue 12): a resuming client is adopted once its claim is decided;
      // adopting links the connection to the request (request.checkConnection()).
      engine.acceptOrResume(socket, request, identity)
    }
  })

  function onSocketError (this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest): void {
    // Socket errors reach the router's own listener (router.accept); only a
    // throw while adopting the socket lands here.
    request.log.error({ err: error, environment: config.environment }, 'websocket could not be adopted')
    socket.terminate()
  }
}

/**
 * fastify-ws-router: a WebSocket route whose every frame passes through a
 * typed handler registry, with fail-fast sends and coded errors.
 *
 * @example
 * await app.register(wsRouter, { path: '/ws' })
 * app.wsRouter.on('echo', { schema: Type.Object({ text: Type.String() }) }, (payload) => payload)
 */
export const wsRouter = fp(wsRouterPlugin, {
  name: 'fastify-ws-router',
  fastify: '5.x'
})

export default wsRouter
