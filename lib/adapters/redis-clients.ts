import type { Cluster, ClusterNode, ClusterOptions, Redis, RedisOptions } from 'ioredis'
import type * as IORedis from 'ioredis'
import { requirePeer } from '../peer-dependency.js'
import { FST_WSR_INVALID_OPTION } from '../errors.js'

// ioredis is an optional peer: only the Redis adapter's modules (entry point fastify-ws-router/redis) load it.
const { Cluster: ClusterClient, Redis: RedisNodeClient } = requirePeer<typeof IORedis>('ioredis', 'redis')

/**
 * The two ioredis connections the Redis adapter needs, for one Redis node or
 * for a Redis Cluster: one for commands and publishing, one for
 * subscriptions. Options are checked here once, so a typo fails at
 * construction rather than as a silent default.
 */

/** A command client: one node, or a Cluster. */
export type RedisClient = Redis | Cluster

export interface RedisConnectionOptions {
  /** A `redis://` URL, or an ioredis client (`Redis` or `Cluster`). */
  redis?: string | Redis | Cluster | undefined
  /** Seed nodes of a Redis Cluster, as `host:port` strings. */
  cluster?: readonly string[] | undefined
  sharded?: boolean | undefined
  prefix?: string | undefined
}

export interface RedisClients {
  pub: RedisClient
  sub: RedisClient
  /** Whether the adapter created the command client (and so disconnects it on close). */
  ownsPublisher: boolean
  cluster: boolean
}

// Fail at once while disconnected: no queue replaying stale frames later.
const retryStrategy = (times: number): number => Math.min(50 * times, 250)

const nodeOptions: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResubscribe: false,
  // Try again quickly so subscriptions are back within a second of Redis.
  retryStrategy
}

/**
 * Commands on a Cluster fail at once too: no offline queue, and a command
 * whose connection dropped is not sent again to the new master
 * (`retryDelayOnFailover: 0`), since a frame sent twice is worse than a
 * frame reported lost. MOVED and ASK are still followed.
 */
const clusterCommandOptions: ClusterOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  retryDelayOnFailover: 0,
  clusterRetryStrategy: retryStrategy,
  redisOptions: { maxRetriesPerRequest: 0 }
}

/**
 * Subscriptions on a Cluster: one subscriber connection per master
 * (`shardedSubscribers`), which ioredis moves to the new owner of a slot
 * after a failover or a migration (a MOVED reply to SSUBSCRIBE, or the
 * server's own SUNSUBSCRIBE when a slot leaves a node). The topology is
 * re-read every second, so a replica promoted after a crash is found within
 * about a second of its promotion. An offline queue is harmless here: it
 * holds subscriptions, never frames.
 */
const clusterSubscriberOptions: ClusterOptions = {
  lazyConnect: true,
  shardedSubscribers: true,
  enableOfflineQueue: true,
  slotsRefreshInterval: 1000,
  clusterRetryStrategy: retryStrategy
}

export function createRedisClients (options: RedisConnectionOptions): RedisClients {
  checkConnectionOptions(options)
  if (options.cluster !== undefined) {
    const nodes = options.cluster.map((seed) => parseSeed(seed))
    return {
      pub: new ClusterClient(nodes, clusterCommandOptions),
      sub: new ClusterClient(nodes, clusterSubscriberOptions),
      ownsPublisher: true,
      cluster: true
    }
  }
  const redis = options.redis as string | Redis | Cluster
  if (redis instanceof ClusterClient) {
    return { pub: redis, sub: redis.duplicate([], clusterSubscriberOptions), ownsPublisher: false, cluster: true }
  }
  const pub = typeof redis === 'string' ? new RedisNodeClient(redis, nodeOptions) : redis
  return { pub, sub: pub.duplicate(nodeOptions), ownsPublisher: typeof redis === 'string', cluster: false }
}

// Issue 12 (resume-redis): the resume store's one command client, from the same options as the adapter.
/**
 * One command client of its own (never the caller's: its options differ),
 * connecting at once, for a component that needs no subscriptions, such as
 * the Redis resume store. Besides failing at once while disconnected, every
 * command is bounded by `commandTimeoutMs`, so a Redis that accepts a
 * connection but does not answer cannot make a caller wait longer.
 */
export function createCommandClient (options: RedisConnectionOptions, commandTimeoutMs: number, owner: string): { client: RedisClient, cluster: boolean } {
  checkConnectionOptions(options, owner)
  const bounded: RedisOptions = { ...nodeOptions, lazyConnect: false, commandTimeout: commandTimeoutMs }
  const clusterOptions: ClusterOptions = { ...clusterCommandOptions, lazyConnect: false, redisOptions: { ...clusterCommandOptions.redisOptions, commandTimeout: commandTimeoutMs } }
  if (options.cluster !== undefined) return { client: new ClusterClient(options.cluster.map((seed) => parseSeed(seed, owner)), clusterOptions), cluster: true }
  const redis = options.redis as string | Redis | Cluster
  if (redis instanceof ClusterClient) return { client: redis.duplicate([], clusterOptions), cluster: true }
  return { client: typeof redis === 'string' ? new RedisNodeClient(redis, bounded) : redis.duplicate(bounded), cluster: false }
}

function checkConnectionOptions (options: RedisConnectionOptions, owner = 'RedisAdapter'): void {
  const hasRedis = options.redis !== undefined
  const hasCluster = options.cluster !== undefined
  if (hasRedis === hasCluster) {
    throw new FST_WSR_INVALID_OPTION(owner, 'pass exactly one of redis (a URL or an ioredis client) and cluster (seed nodes)')
  }
  if (hasRedis && typeof options.redis !== 'string' && !(options.redis instanceof RedisNodeClient) && !(options.redis instanceof ClusterClient)) {
    throw new FST_WSR_INVALID_OPTION(`${owner}.redis`, 'expected a redis:// URL, an ioredis Redis or an ioredis Cluster')
  }
  if (hasCluster && (!Array.isArray(options.cluster) || options.cluster.length === 0)) {
    throw new FST_WSR_INVALID_OPTION(`${owner}.cluster`, 'expected a non-empty array of "host:port" seed nodes')
  }
  const isCluster = hasCluster || options.redis instanceof ClusterClient
  if (isCluster && options.sharded === false) {
    throw new FST_WSR_INVALID_OPTION(`${owner}.sharded`, 'a Redis Cluster always uses sharded pub/sub; leave sharded out')
  }
  // Hash tags in the prefix would put every key and channel in one slot, on one shard.
  if (options.prefix !== undefined && /[{}]/.test(options.prefix)) {
    throw new FST_WSR_INVALID_OPTION(`${owner}.prefix`, 'must not contain { or }: the adapter places its own hash tags')
  }
}

function parseSeed (seed: unknown, owner = 'RedisAdapter'): ClusterNode {
  const match = typeof seed === 'string' ? /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(seed) : null
  const port = match === null ? NaN : Number(match[2])
  if (match === null || port < 1 || port > 65535) {
    throw new FST_WSR_INVALID_OPTION(`${owner}.cluster`, `seed node ${JSON.stringify(seed)} is not "host:port"`)
  }
  return { host: match[1] as string, port }
}
