/**
 * The example application, without listening or signal handling (those are
 * in examples/server.ts), so that tests can build it with any environment.
 *
 * Environment:
 * - `AUTH_SECRET`: HS256 secret of the clients' JWTs (`sub` = user id,
 *   `exp` = when the connection ends with 1008 `TOKEN_EXPIRED`).
 *   Required in production; elsewhere a public development secret is used.
 * - `ALLOWED_ORIGINS`: comma-separated browser origins allowed to connect.
 *   Outside production the default is `http://localhost:<PORT>` and
 *   `http://127.0.0.1:<PORT>`. Required in production: the example refuses to
 *   start without it; `*` accepts any origin on purpose (the plugin warns).
 * - `STATS_TOKEN`: in production, `GET /stats` answers only
 *   `Authorization: Bearer <STATS_TOKEN>`, and is off (404) when it is unset.
 * - `NODE_ENV` / `ENVIRONMENT`: `production` turns off the development
 *   secret; the `?user=` demo identity works in development and test only.
 * - `LOG_LEVEL`: pino level, default `info` (`silent` for none).
 * - `REDIS_URL`: when set, both routers use the Redis adapter, so several
 *   instances (two ports, two machines) share users, rooms and presence.
 * - `REDIS_CLUSTER_NODES`: comma-separated `host:port` seed nodes of a Redis
 *   Cluster, instead of `REDIS_URL` (setting both is an error).
 *
 * Resumable delivery is on for /ws (docs/delivery.md): a client that
 * reconnects within 2 minutes gets what it missed, in order, and its rooms.
 * Sessions wait in the memory store of this instance; with `REDIS_URL` or
 * `REDIS_CLUSTER_NODES` they wait in Redis Streams (`RedisResumeStore`, see
 * `resumeFor`), so a client may resume on another instance.
 */
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { timingSafeEqual } from 'node:crypto'
import type { Writable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import websocket from '@fastify/websocket'
import { asyncApiDocument, resolveEnvironment, selectProtocol, wsRouter, WsRouterError, type Authenticate, type RouterAdapter } from '../lib/index.js'
import { RedisAdapter, RedisResumeStore } from '../lib/redis.js'
import { createTokenVerifier, InvalidTokenError, isProduction, resolveAuthSecret } from './auth.js'
import { demoCalculatorAgent } from './demo-agent.js'
import { demoPage, registerRoomMembers } from './demo-web.js'
import { registerSpecMethods } from './jsonrpc-spec-methods.js'

/** The demo identity's format, as the plugin's own `?user=` (development and test only). */
const DEMO_USER_ID = /^[\w.@-]{1,64}$/

/** `ALLOWED_ORIGINS` as the plugin's `allowedOrigins`; `*` is any origin (undefined). */
function allowedOriginsFrom (env: NodeJS.ProcessEnv, production: boolean): string[] | undefined {
  const list = env.ALLOWED_ORIGINS
  if (list !== undefined && list.trim() !== '') {
    if (list.trim() === '*') return undefined
    return list.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  }
  if (production) {
    throw new Error('ALLOWED_ORIGINS is not set: in production the example server refuses to start without the browser origins allowed to connect (comma-separated, e.g. https://app.example.com), or ALLOWED_ORIGINS=* to accept any origin on purpose.')
  }
  const port = env.PORT !== undefined && env.PORT.trim() !== '' ? env.PORT.trim() : '3000'
  return [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
}

/** In production `GET /stats` needs `Authorization: Bearer <STATS_TOKEN>`; without STATS_TOKEN it does not exist. */
function statsGuard (env: NodeJS.ProcessEnv, production: boolean): ((request: FastifyRequest, reply: FastifyReply) => Promise<void>) | null | undefined {
  if (!production) return undefined
  const secret = env.STATS_TOKEN
  if (secret === undefined || secret.trim() === '') return null
  const expected = Buffer.from(`Bearer ${secret.trim()}`)
  return async (request, reply) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: `GET ${request.url.split('?')[0] ?? ''} needs Authorization: Bearer <STATS_TOKEN>` })
    }
  }
}

/** The environment name the example gives both routers, and their shutdown grace. */
export function exampleEnvironment (env: NodeJS.ProcessEnv): { name: string, shutdownGraceMs: number } {
  const name = isProduction(env) ? 'production' : resolveEnvironment(undefined, env).name
  return { name, shutdownGraceMs: resolveEnvironment(name, env).preset.shutdownGraceMs }
}

export interface BuildOptions {
  /** Where the JSON log lines go (tests); default stdout. */
  logStream?: Writable
}

/**
 * Build the example app: the router on `/ws` with JWT authentication,
 * `allowedOrigins`, the chat built-ins (rooms, typing, messages), the demo
 * agent, the `echo`, `whoami` and `fail` handlers; a JSON-RPC 2.0 router on
 * `/rpc`; `GET /stats`, `GET /asyncapi.json`, `GET /metrics`, `GET /health/live`, `GET /health/ready`. Rejects in production without `AUTH_SECRET`.
 *
 * @example
 * const app = await buildApp(process.env)
 * await app.listen({ port: 3000 })
 */
export async function buildApp (env: NodeJS.ProcessEnv, options: BuildOptions = {}): Promise<FastifyInstance> {
  const production = isProduction(env)
  // Throws before anything is created when production has no usable secret
  // or no ALLOWED_ORIGINS.
  const secret = resolveAuthSecret(env)
  const verifyToken = createTokenVerifier(secret)

  const environment = exampleEnvironment(env).name
  const allowedOrigins = allowedOriginsFrom(env, production)
  const demoIdentity = environment === 'development' || environment === 'test'
  const guardStats = statsGuard(env, production)

  const authenticate: Authenticate = (request, token) => {
    if (token !== undefined) {
      try {
        // expiresAt (the JWT's exp): the router closes the connection with 1008 TOKEN_EXPIRED then.
        return { ...verifyToken(token) }
      } catch (err) {
        // The reason (FAST_JWT_EXPIRED, FAST_JWT_INVALID_SIGNATURE, …), never the token.
        const reason = err instanceof InvalidTokenError ? err.reason : 'UNKNOWN'
        request.log.info({ reason }, 'websocket token refused')
        throw err
      }
    }
    if (!demoIdentity) return null
    const user = (request.query as Record<string, unknown> | undefined)?.user
    return typeof user === 'string' && DEMO_USER_ID.test(user) ? { userId: user } : null
  }

  const level = env.LOG_LEVEL ?? 'info'
  const app = Fastify({ logger: options.logStream === undefined ? { level } : { level, stream: options.logStream } })
  const redisUrl = env.REDIS_URL !== undefined && env.REDIS_URL.trim() !== '' ? env.REDIS_URL.trim() : undefined
  const clusterNodes = (env.REDIS_CLUSTER_NODES ?? '').split(',').map((node) => node.trim()).filter((node) => node !== '')
  if (redisUrl !== undefined && clusterNodes.length > 0) throw new Error('set REDIS_URL or REDIS_CLUSTER_NODES, not both')
  const adapterFor = (prefix: string): RouterAdapter | undefined => clusterNodes.length > 0
    ? new RedisAdapter({ cluster: clusterNodes, prefix })
    : redisUrl === undefined ? undefined : new RedisAdapter({ redis: redisUrl, prefix })
  // resume-redis: with Redis, sessions live in Redis Streams, so a client may resume on another instance.
  const resumeFor = (prefix: string): true | { store: RedisResumeStore } => clusterNodes.length > 0
    ? { store: new RedisResumeStore({ cluster: clusterNodes, prefix }) }
    : redisUrl === undefined ? true : { store: new RedisResumeStore({ redis: redisUrl, prefix }) }

  // Two routers (/ws and /rpc) share one @fastify/websocket, registered here at
  // the root; each router closes its own clients with 1001 on shutdown.
  await app.register(websocket, {
    options: { maxPayload: 64 * 1024, handleProtocols: selectProtocol },
    preClose: (done) => { done() }
  })

  // /ws: envelopes (and JSON-RPC frames), rooms chat, the demo agent.
  await app.register(async (scope) => {
    // GET /metrics (Prometheus, prom-client's global registry), GET /health/live and /health/ready.
    // In production /metrics is guarded like /stats (STATS_TOKEN), and collected but not served without it.
    if (guardStats !== undefined) {
      scope.addHook('onRoute', (route) => {
        if (route.url === '/metrics' && guardStats !== null) route.onRequest = guardStats
      })
    }
    // resume: resumable delivery (issue 12, docs/delivery.md): the memory store, so a client resumes
    // on the instance it left; with REDIS_URL or REDIS_CLUSTER_NODES the Redis store, on any instance.
    await scope.register(wsRouter, { path: '/ws', environment, authenticate, allowedOrigins, agent: demoCalculatorAgent, adapter: adapterFor('wsr:ws:'), metrics: guardStats === null ? { path: false } : true, health: true, resume: resumeFor('wsr:ws:') })
    scope.wsRouter.on('echo', {
      schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1000 }) }),
      replySchema: Type.Object({ text: Type.String() })
    }, (payload) => ({ text: payload.text }))
    scope.wsRouter.on('whoami', (_payload, ctx) => ({ userId: ctx.userId, connectionId: ctx.connectionId, status: ctx.status() }))
    scope.wsRouter.on('fail', () => {
      throw new WsRouterError('DEMO_FAILURE', 'This type always fails, to show an error frame')
    })
    registerRoomMembers(scope.wsRouter)
    if (guardStats !== null) {
      app.get('/stats', { onRequest: guardStats }, async () => ({ ws: scope.wsRouter.getStats(), rpc: rpcStats() }))
    }
    // The /ws route's AsyncAPI 3.0 document, generated from its registry (docs/client.md#asyncapi).
    app.get('/asyncapi.json', async () => asyncApiDocument(scope.wsRouter, { title: 'fastify-ws-router example', path: '/ws' }))
  })

  // /rpc: JSON-RPC 2.0 only, with the methods of the specification's examples.
  let rpcStats: () => unknown = () => null
  await app.register(async (scope) => {
    // Its series join /ws's on the same registry (label route="/rpc"); /metrics is served once.
    await scope.register(wsRouter, { path: '/rpc', protocol: 'jsonrpc', environment, authenticate, allowedOrigins, adapter: adapterFor('wsr:rpc:'), metrics: { path: false } })
    registerSpecMethods(scope.wsRouter)
    rpcStats = () => scope.wsRouter.getStats()
  })

  // The browser demo at `/` (examples/demo-web.ts); its sign-in route only outside production.
  await demoPage(app, { secret, verifyToken, production })

  return app
}
