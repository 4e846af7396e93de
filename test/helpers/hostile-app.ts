import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { Type } from '@sinclair/typebox'
import { WsRouterError, wsRouter, type AgentStep, type WsRouterOptions } from '../../lib/index.js'
import { agentRunsOf, typingTrackerOf } from './internals.js'
import { engineOf } from './internals.js'

/**
 * The server the hostile frames are aimed at, shared by the property tests
 * and the soak's server process. Three profiles, each its own Fastify app
 * and port, because a router's own ws server (and so its protocol-error
 * handling) is only there when it registers @fastify/websocket itself:
 *
 * - `default`: every option at its default (rate limit, maxConsecutiveErrors
 *   5, 64 KiB frames, depth 32), environment production;
 * - `fuzz`: the same but no rate limit and no consecutive-error close, so a
 *   connection lives long enough to take many hostile frames;
 * - `rpc`: a `protocol: 'jsonrpc'` route, no rate limit.
 *
 * Handlers cover every way a handler ends: a value, nothing, a throw, a
 * WsRouterError, an async value, and a reply too large to send.
 */
export type HostileProfile = 'default' | 'fuzz' | 'rpc'

export const HOSTILE_PROFILE_OPTIONS: Readonly<Record<HostileProfile, WsRouterOptions>> = Object.freeze({
  default: {},
  fuzz: { rateLimit: false, maxConsecutiveErrors: 1_000_000, maxConnectionsPerUser: 0 },
  rpc: { protocol: 'jsonrpc', rateLimit: false, maxConsecutiveErrors: 1_000_000, maxConnectionsPerUser: 0 }
})

/** A deterministic agent: start_agent frames run to completion. */
async function * echoAgent (input: string): AsyncGenerator<AgentStep, unknown, undefined> {
  yield { type: 'thinking', reasoning: `echo ${input.length}` }
  return { text: input.slice(0, 64) }
}

export async function buildHostileApp (profile: HostileProfile, logger: FastifyServerOptions['logger'], extra: WsRouterOptions = {}, fastify: Omit<FastifyServerOptions, 'logger'> = {}): Promise<FastifyInstance> {
  const app = Fastify({ ...fastify, logger })
  await app.register(wsRouter, {
    environment: 'production',
    allowAnonymous: true,
    agent: echoAgent,
    ...HOSTILE_PROFILE_OPTIONS[profile],
    ...extra
  })
  const router = app.wsRouter
  router.on('echo', { schema: Type.Object({ text: Type.String({ maxLength: 1000 }) }) }, (payload) => ({ text: payload.text }))
  router.on('quiet', () => {})
  router.on('throw', () => { throw new Error('handler failed on purpose') })
  router.on('refuse', () => { throw new WsRouterError('FORBIDDEN', 'refused on purpose') })
  router.on('slow', async () => { await new Promise((resolve) => setTimeout(resolve, 2)); return { slow: true } })
  router.on('big', () => ({ blob: 'b'.repeat(2 * 1024 * 1024) }))
  router.method('subtract', { params: Type.Tuple([Type.Number(), Type.Number()]) }, ([a, b]) => a - b)
  router.method('sum', { params: Type.Array(Type.Number()) }, (params) => params.reduce((a, b) => a + b, 0))
  router.method('throw', () => { throw new Error('method failed on purpose') })
  router.method('slow', async () => { await new Promise((resolve) => setTimeout(resolve, 2)); return 'slow' })
  router.method('refuse', () => { throw new WsRouterError('FORBIDDEN', 'refused on purpose') })
  return app
}

/**
 * Every registry a connection can leave something in: each must be back to
 * zero once the clients are gone (through test-only accessors).
 */
export function registries (app: FastifyInstance): Record<string, number> {
  const router = app.wsRouter
  const stats = router.getStats()
  return {
    connections: router.connectionCount,
    admissions: engineOf(router).admissions.size,
    deadlines: engineOf(router).sweeper.size,
    rooms: stats.rooms,
    users: stats.users,
    typing: typingTrackerOf(router)?.connections ?? 0,
    agentRuns: agentRunsOf(router)?.size ?? 0
  }
}
