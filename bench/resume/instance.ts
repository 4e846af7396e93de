/**
 * One server instance for bench/resume.ts, run as its own process. Prints
 * `{"port": N}` once listening. Environment: REDIS_URL, INSTANCE_ID,
 * WINDOW_MS (the resume window).
 */
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter } from '../../lib/index.js'
import { RedisAdapter, RedisResumeStore } from '../../lib/redis.js'

const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const instanceId = process.env.INSTANCE_ID ?? 'bench'
const app = Fastify({ logger: { level: 'warn' } })
await app.register(wsRouter, {
  environment: 'test',
  adapter: new RedisAdapter({ redis, instanceId }),
  resume: { store: new RedisResumeStore({ redis }), windowMs: Number(process.env.WINDOW_MS ?? 120_000) },
  rateLimit: false,
  maxConnectionsPerUser: 0
})
const router = app.wsRouter

// A room message carrying its sender and the sender's own counter, so receivers can check order and completeness.
router.on('say', { schema: Type.Object({ room: Type.String(), s: Type.String(), n: Type.Integer() }), replyType: 'said' }, async (payload, ctx) => {
  const result = await router.sendToRoom(payload.room, 'heard', { s: payload.s, n: payload.n }, { except: ctx.connectionId })
  return { ok: result.ok, remote: result.remote }
})
app.get('/stats', async () => router.getStats())

await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }) + '\n')
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
