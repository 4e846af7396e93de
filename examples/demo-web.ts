/**
 * The browser demo's server side (issue 14): the page at `/`, its bundle,
 * the demo sign-in and the room member list. Registered by examples/app.ts.
 *
 * - `GET /` and the files of examples/web/ (index.html, demo.css) through
 *   `@fastify/static`.
 * - `GET /demo.js`: examples/web/main.ts and the client SDK (lib/client),
 *   bundled by esbuild in memory on the first request and kept, so
 *   `npm start` needs no separate build step and never serves a stale bundle.
 * - `POST /demo/token` `{ name }` → `{ token, userId, expiresAt }`: a
 *   short-lived HS256 JWT for that name, signed with the example's secret.
 *   Outside production only: there it does not exist (404), and clients
 *   bring their own tokens.
 * - `POST /demo/session` with `Authorization: Bearer <token>`: 200
 *   `{ userId, expiresAt }`, or 401 with the reason (`FAST_JWT_EXPIRED`, …).
 *   The page asks it before every connection attempt, because a browser
 *   cannot read the status of a refused WebSocket upgrade.
 * - the `room_members` message type on `/ws`: `{ room }` → `{ room, users }`,
 *   the distinct user ids in the room (members only).
 */
import type { FastifyInstance } from 'fastify'
import { fileURLToPath } from 'node:url'
import fastifyStatic from '@fastify/static'
import { Type } from '@sinclair/typebox'
import { WsRouterError, type WsRouter } from '../lib/index.js'
import { InvalidTokenError, signToken, type VerifiedToken } from './auth.js'

const webRoot = fileURLToPath(new URL('./web/', import.meta.url))

/** Demo sign-in tokens are valid for 15 minutes: the page signs in again after that. */
export const DEMO_TOKEN_TTL_MS = 15 * 60 * 1000

const SignIn = Type.Object({ name: Type.String({ pattern: '^[\\w.@-]{1,64}$' }) }, { additionalProperties: false })

export interface DemoPageOptions {
  secret: string
  verifyToken: (token: string) => VerifiedToken
  production: boolean
}

let bundle: Promise<string> | undefined

/** examples/web/main.ts with the client SDK, for browsers; built once per process. */
function demoBundle (): Promise<string> {
  bundle ??= import('esbuild').then(async (esbuild) => {
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(new URL('./web/main.ts', import.meta.url))],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      sourcemap: 'inline',
      write: false,
      logLevel: 'silent'
    })
    return result.outputFiles[0]?.text ?? ''
  })
  // A failed build is not cached: the next request tries again (after an edit, say).
  bundle.catch(() => { bundle = undefined })
  return bundle
}

/** The page, its bundle and the sign-in routes, on the root instance. */
export async function demoPage (app: FastifyInstance, options: DemoPageOptions): Promise<void> {
  // No wildcard route: only the files there now get a route, so every other URL
  // stays the app's own 404 (which never echoes a query string, tokens included).
  await app.register(fastifyStatic, { root: webRoot, index: 'index.html', wildcard: false, allowedPath: (path) => !path.endsWith('.ts') })

  app.get('/demo.js', async (_request, reply) => {
    return await reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(await demoBundle())
  })

  if (!options.production) {
    app.post('/demo/token', { schema: { body: SignIn } }, async (request) => {
      const { name } = request.body as { name: string }
      const token = signToken(options.secret, name, DEMO_TOKEN_TTL_MS)
      return { token, ...options.verifyToken(token) }
    })
  }

  app.post('/demo/session', async (request, reply) => {
    const header = request.headers.authorization ?? ''
    const token = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : ''
    try {
      return options.verifyToken(token)
    } catch (err) {
      const reason = err instanceof InvalidTokenError ? err.reason : 'UNKNOWN'
      return await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'Invalid token', reason })
    }
  })
}

/** `room_members` on the demo's router: who is in a room, for members of that room. */
export function registerRoomMembers (router: WsRouter): void {
  router.on('room_members', {
    schema: Type.Object({ room: Type.String({ minLength: 1, maxLength: 128 }) }),
    replySchema: Type.Object({ room: Type.String(), users: Type.Array(Type.String()) })
  }, async (payload, ctx) => {
    if (!router.isMember(ctx.connectionId, payload.room)) {
      throw new WsRouterError('FORBIDDEN', `Not a member of room "${payload.room}": join it first`)
    }
    const members = await router.members(payload.room)
    return { room: payload.room, users: [...new Set(members.map((member) => member.userId))].sort() }
  })
}
