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
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Writable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import { resolveEnvironment, wsRouter, WsRouterError, type Authenticate } from '../lib/index.js'
import { createTokenVerifier, InvalidTokenError, isProduction, resolveAuthSecret } from './auth.js'

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
 * `allowedOrigins`, the `echo`, `whoami` and `fail` handlers, and
 * `GET /stats`. Rejects in production without `AUTH_SECRET`.
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
  await app.register(wsRouter, {
    path: '/ws',
    environment: production ? 'production' : resolveEnvironment(undefined, env).name,
    authenticate,
    allowedOrigins: allowedOriginsFrom(env, production)
  })

  app.wsRouter.on('echo', {
    schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1000 }) }),
    replySchema: Type.Object({ text: Type.String() })
  }, (payload) => ({ text: payload.text }))

  app.wsRouter.on('whoami', (_payload, ctx) => ({ userId: ctx.userId, connectionId: ctx.connectionId, status: ctx.status() }))

  app.wsRouter.on('fail', () => {
    throw new WsRouterError('DEMO_FAILURE', 'This type always fails, to show an error frame')
  })

  app.get('/stats', async () => app.wsRouter.getStats())

  return app
}
