/**
 * fastify-ws-router/redis: scale-out on Redis, an entry point of its own so
 * that the main entry never loads `ioredis` (an optional peer dependency).
 * Importing it without `ioredis` installed fails with `FST_WSR_MISSING_PEER`.
 *
 * @example
 * import { RedisAdapter } from 'fastify-ws-router/redis'
 * await app.register(wsRouter, { path: '/ws', adapter: new RedisAdapter({ redis: process.env.REDIS_URL }) })
 */
export { RedisAdapter, type RedisAdapterOptions } from './adapters/redis.js'
// Issue 12 (resume-redis): session streams in Redis, so a client may resume on another instance.
export { RedisResumeStore, type RedisResumeStoreOptions } from './delivery/redis-store.js'
