/**
 * One fastify-ws-router instance for bench/cross-instance.ts, run as its own
 * process: `env -u NODE_OPTIONS node --import tsx bench/cross-instance/plugin-instance.ts`.
 * With REDIS_URL it uses the RedisAdapter (instance id INSTANCE_ID), with
 * REDIS_CLUSTER_NODES (comma-separated host:port) the RedisAdapter on a Redis
 * Cluster, without either the default in-memory adapter. Prints `{"port": N}` once listening.
 * `say` fans the payload out to the room as `heard`, excluding the sender,
 * and sends no reply (the frames carry no id).
 */
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter } from '../../lib/index.js'
import { RedisAdapter } from '../../lib/redis.js'

const redisUrl = process.env.REDIS_URL
const clusterNodes = process.env.REDIS_CLUSTER_NODES
const adapter = clusterNodes !== undefined && clusterNodes !== ''
  ? new RedisAdapter({ cluster: clusterNodes.split(','), instanceId: process.env.INSTANCE_ID })
  : redisUrl !== undefined && redisUrl !== ''
    ? new RedisAdapter({ redis: redisUrl, instanceId: process.env.INSTANCE_ID })
    : undefined

const app = Fastify({ logger: { level: 'warn' } })
await app.register(wsRouter, {
  environment: 'test',
  ...(adapter !== undefined ? { adapter } : {}),
  rateLimit: false,
  maxConnectionsPerUser: 0,
  maxInFlight: 1024
})
const router = app.wsRouter

router.on('say', { schema: Type.Object({ room: Type.String(), seq: Type.Number(), t: Type.Number() }) }, async (payload, ctx) => {
  await router.sendToRoom(payload.room, 'heard', payload, { except: ctx.connectionId })
})

await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }) + '\n')
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
