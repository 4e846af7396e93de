import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import websocket from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { ConnectionStatus } from '../lib/connection.js'
import { FST_WSR_ANONYMOUS_IN_PRODUCTION, FST_WSR_WEBSOCKET_CONFLICT } from '../lib/errors.js'
import { registerHeartbeat } from '../lib/handlers/heartbeat.js'
import { registerPing } from '../lib/handlers/ping.js'
import { buildConfig, type Identity, type RouterConfig, type WsRouterOptions } from '../lib/options.js'
import { WsRouter } from '../lib/router.js'
import type { Connection } from '../lib/connection.js'

/**
 * The Fastify plugin: it only wires lib/ into an app. Options are validated
 * here, once, so `await app.ready()` rejects with a coded error.
 */

declare module 'fastify' {
  interface FastifyInstance {
    /** The router registered in this context. */
    wsRouter: WsRouter
  }
  interface FastifyRequest {
    /**
     * The connection checker of a WebSocket request: state, liveness and
     * writability read from the socket itself.
     */
    checkConnection: () => ConnectionStatus
  }
}

const kConnection = Symbol('fastify-ws-router.request-connection')
const kIdentity = Symbol('fastify-ws-router.identity')

interface RouterRequest extends FastifyRequest {
  [kConnection]?: Connection
  [kIdentity]?: Identity
}

const NO_SOCKET: ConnectionStatus = Object.freeze({
  state: 'CLOSED',
  connected: false,
  alive: false,
  writable: false,
  bufferedAmount: 0,
  lastSeenMs: Number.POSITIVE_INFINITY
})

function checkConnection (this: FastifyRequest): ConnectionStatus {
  const conn = (this as RouterRequest)[kConnection]
  return conn === undefined ? NO_SOCKET : conn.status()
}

const demoUserId = /^[\w.@-]{1,64}$/

/** Outside production, without `authenticate`: `?user=` names the client (demo identity). */
function anonymousIdentity (request: FastifyRequest, config: RouterConfig): Identity {
  if (config.environment !== 'production') {
    const user = (request.query as Record<string, unknown> | undefined)?.user
    if (typeof user === 'string' && demoUserId.test(user)) return { userId: user }
  }
  return { userId: `anon-${randomUUID()}` }
}

async function wsRouterPlugin (fastify: FastifyInstance, options: WsRouterOptions): Promise<void> {
  const config = buildConfig(options)
  if (config.environment === 'production' && config.authenticate === undefined && !config.allowAnonymous) {
    throw new FST_WSR_ANONYMOUS_IN_PRODUCTION()
  }
  const router = new WsRouter(config, fastify.log)
  registerPing(router)
  registerHeartbeat(router)

  if (fastify.hasDecorator('websocketServer')) {
    // @fastify/websocket was registered by the app: its ws server may allow
    // larger frames than this router, so the router checks each frame too.
    const maxPayload = (fastify.websocketServer.options as { maxPayload?: number }).maxPayload ?? 100 * 1024 * 1024
    router.enforcePayloadLimit = maxPayload > config.maxPayloadBytes
    fastify.addHook('preClose', async () => { await router.close() })
  } else {
    // Two @fastify/websocket instances on one server would both route every upgrade.
    if (fastify.server.listenerCount('upgrade') > 0) throw new FST_WSR_WEBSOCKET_CONFLICT()
    await fastify.register(websocket, {
      options: { maxPayload: config.maxPayloadBytes },
      errorHandler: onSocketError,
      preClose: function (done) {
        const wss = this.websocketServer
        router.close().then(() => wss.close(() => done()), done)
      }
    })
  }

  fastify.decorate('wsRouter', router)
  if (!fastify.hasRequestDecorator('checkConnection')) fastify.decorateRequest('checkConnection', checkConnection)

  fastify.addHook('onReady', async () => { router.lock() })

  fastify.route({
    method: 'GET',
    url: config.path,
    websocket: true,
    onRequest: async function admit (request: FastifyRequest, reply: FastifyReply) {
      if (router.isClosing) {
        return reply.code(503).header('retry-after', '1').send({ statusCode: 503, error: 'Service Unavailable', message: 'Server is shutting down' })
      }
      (request as RouterRequest)[kIdentity] = anonymousIdentity(request, config)
    },
    handler: function wsHandler (socket: WebSocket, request: FastifyRequest) {
      const identity = (request as RouterRequest)[kIdentity] as Identity
      ;(request as RouterRequest)[kConnection] = router.accept(socket, request, identity.userId)
    }
  })

  function onSocketError (this: FastifyInstance, error: Error, socket: WebSocket, request: FastifyRequest): void {
    // ws raises these while reading a bad frame, after it started the close
    // handshake with the matching code (1002, 1007, 1009): log and count, let ws close.
    const code = (error as { code?: string }).code ?? 'UNKNOWN'
    router.stats.countProtocolError(code)
    const conn = (request as RouterRequest)[kConnection]
    ;(conn?.log ?? request.log).warn({ err: error, code, state: conn?.state, environment: config.environment }, 'websocket protocol error')
    if (socket.readyState === socket.OPEN) socket.terminate()
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
