/**
 * The example application, without listening or signal handling (those are
 * in examples/server.ts), so that tests can build it with any environment.
 *
 * Environment:
 * - `AUTH_SECRET`: HS256 secret of the clients' JWTs (`sub` = user id).
 *   Required in production; elsewhere a public development secret is used.
 * - `ALLOWED_ORIGINS`: comma-separated browser origins allowed to connect.
 *   Outside production the default is `http://localhost:<PORT>` and
 *   `http://127.0.0.1:<PORT>`; in production, unset means any origin (the
 *   plugin warns at start-up).
 * - `NODE_ENV` / `ENVIRONMENT`: `production` turns off the `?user=` demo
 *   identity and the development secret.
 * - `LOG_LEVEL`: pino level, default `info` (`silent` for none).
 * - `REDIS_URL`: when set, both routers use the Redis adapter, so several
 *   instances (two ports, two machines) share users, rooms and presence.
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Writable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import websocket from '@fastify/websocket'
import { RedisAdapter, resolveEnvironment, selectProtocol, wsRouter, WsRouterError, type Authenticate, type RouterAdapter } from '../lib/index.js'
import { createTokenVerifier, InvalidTokenError, isProduction, resolveAuthSecret } from './auth.js'
import { demoCalculatorAgent } from './demo-agent.js'
import { registerSpecMethods } from './jsonrpc-spec-methods.js'

/** The demo identity's format, as the plugin's own `?user=` (outside production only). */
const DEMO_USER_ID = /^[\w.@-]{1,64}$/

function allowedOriginsFrom (env: NodeJS.ProcessEnv, production: boolean): string[] | undefined {
  const list = env.ALLOWED_ORIGINS
  if (list !== undefined && list.trim() !== '') {
    return list.split(',').map((origin) => origin.trim()).filter((origin) => origin !== '')
  }
  if (production) return undefined
  const port = env.PORT !== undefined && env.PORT.trim() !== '' ? env.PORT.trim() : '3000'
  return [`http://localhost:${port}`, `http://127.0.0.1:${port}`]
}

export interface BuildOptions {
  /** Where the JSON log lines go (tests); default stdout. */
  logStream?: Writable
}

/**
 * Build the example app: the router on `/ws` with JWT authentication,
 * `allowedOrigins`, the chat built-ins (rooms, typing, messages), the demo
 * agent, the `echo`, `whoami` and `fail` handlers; a JSON-RPC 2.0 router on
 * `/rpc`; `GET /stats`, `GET /metrics`, `GET /health/live`, `GET /health/ready`. Rejects in production without `AUTH_SECRET`.
 *
 * @example
 * const app = await buildApp(process.env)
 * await app.listen({ port: 3000 })
 */
export async function buildApp (env: NodeJS.ProcessEnv, options: BuildOptions = {}): Promise<FastifyInstance> {
  const production = isProduction(env)
  // Throws before anything is created when production has no usable secret.
  const verifyToken = createTokenVerifier(resolveAuthSecret(env))

  const authenticate: Authenticate = (request, token) => {
    if (token !== undefined) {
      try {
        return { userId: verifyToken(token) }
      } catch (err) {
        // The reason (FAST_JWT_EXPIRED, FAST_JWT_INVALID_SIGNATURE, …), never the token.
        const reason = err instanceof InvalidTokenError ? err.reason : 'UNKNOWN'
        request.log.info({ reason }, 'websocket token refused')
        throw err
      }
    }
    if (production) return null
    const user = (request.query as Record<string, unknown> | undefined)?.user
    return typeof user === 'string' && DEMO_USER_ID.test(user) ? { userId: user } : null
  }

  const level = env.LOG_LEVEL ?? 'info'
  const app = Fastify({ logger: options.logStream === undefined ? { level } : { level, stream: options.logStream } })
  const environment = production ? 'production' : resolveEnvironment(undefined, env).name
  const allowedOrigins = allowedOriginsFrom(env, production)
  const redisUrl = env.REDIS_URL !== undefined && env.REDIS_URL.trim() !== '' ? env.REDIS_URL.trim() : undefined
  const adapterFor = (prefix: string): RouterAdapter | undefined => redisUrl === undefined ? undefined : new RedisAdapter({ redis: redisUrl, prefix })

  // Two routers (/ws and /rpc) share one @fastify/websocket, registered here at
  // the root; each router closes its own clients with 1001 on shutdown.
  await app.register(websocket, {
    options: { maxPayload: 64 * 1024, handleProtocols: selectProtocol },
    preClose: (done) => { done() }
  })

  // /ws: envelopes (and JSON-RPC frames), rooms chat, the demo agent.
  await app.register(async (scope) => {
    // GET /metrics (Prometheus, prom-client's global registry), GET /health/live and /health/ready.
    await scope.register(wsRouter, { path: '/ws', environment, authenticate, allowedOrigins, agent: demoCalculatorAgent, adapter: adapterFor('wsr:ws:'), metrics: true, health: true })
    scope.wsRouter.on('echo', {
      schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1000 }) }),
      replySchema: Type.Object({ text: Type.String() })
    }, (payload) => ({ text: payload.text }))
    scope.wsRouter.on('whoami', (_payload, ctx) => ({ userId: ctx.userId, connectionId: ctx.connectionId, status: ctx.status() }))
    scope.wsRouter.on('fail', () => {
      throw new WsRouterError('DEMO_FAILURE', 'This type always fails, to show an error frame')
    })
    app.get('/stats', async () => ({ ws: scope.wsRouter.getStats(), rpc: rpcStats() }))
  })

  // /rpc: JSON-RPC 2.0 only, with the methods of the specification's examples.
  let rpcStats: () => unknown = () => null
  await app.register(async (scope) => {
    // Its series join /ws's on the same registry (label route="/rpc"); /metrics is served once.
    await scope.register(wsRouter, { path: '/rpc', protocol: 'jsonrpc', environment, authenticate, allowedOrigins, adapter: adapterFor('wsr:rpc:'), metrics: { path: false } })
    registerSpecMethods(scope.wsRouter)
    rpcStats = () => scope.wsRouter.getStats()
  })

  return app
}
