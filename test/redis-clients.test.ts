// lib/adapters/redis-clients.ts on its own: which ioredis clients the Redis adapter
// gets for each way of naming Redis, with the options its guarantees rest on
// (no offline queue for commands, no resend after a dropped connection,
// sharded subscribers that follow slot moves). No server is needed: every
// client is created with lazyConnect and never connects.
import t from 'tap'
import { Cluster, Redis } from 'ioredis'
import { createRedisClients } from '../lib/adapters/redis-clients.js'

t.test('seed nodes: two Clusters, commands fail fast, subscriptions follow the slots', async (t) => {
  const { pub, sub, ownsPublisher, cluster } = createRedisClients({ cluster: ['127.0.0.1:7000', 'redis-1.internal:7001', '[::1]:7002'] })
  t.teardown(() => { pub.disconnect(); sub.disconnect() })
  t.ok(pub instanceof Cluster && sub instanceof Cluster)
  t.equal(cluster, true)
  t.equal(ownsPublisher, true, 'the adapter created it, so it disconnects it')
  t.not(pub, sub, 'subscriptions have their own connections')
  t.same((pub as unknown as { startupNodes: unknown }).startupNodes, [
    { host: '127.0.0.1', port: 7000 },
    { host: 'redis-1.internal', port: 7001 },
    { host: '::1', port: 7002 }
  ])
  t.match((pub as Cluster).options, { enableOfflineQueue: false, retryDelayOnFailover: 0, lazyConnect: true, redisOptions: { maxRetriesPerRequest: 0 } })
  t.notOk((pub as Cluster).options.shardedSubscribers, 'the command client subscribes to nothing')
  t.match((sub as Cluster).options, { shardedSubscribers: true, enableOfflineQueue: true, slotsRefreshInterval: 1000, lazyConnect: true })
  t.equal(pub.status, 'wait', 'nothing connects before the app starts')
})

t.test('an ioredis Cluster passed in: used for commands, duplicated with sharded subscribers', async (t) => {
  const given = new Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true, keyPrefix: 'app:' })
  const { pub, sub, ownsPublisher, cluster } = createRedisClients({ redis: given })
  t.teardown(() => { given.disconnect(); sub.disconnect() })
  t.equal(pub, given)
  t.equal(ownsPublisher, false, 'a client passed in is left open')
  t.equal(cluster, true)
  t.ok(sub instanceof Cluster)
  t.match((sub as Cluster).options, { shardedSubscribers: true, keyPrefix: 'app:' }, 'the caller\'s own options are kept')
})

t.test('one node: a URL or a Redis client, as before', async (t) => {
  const fromUrl = createRedisClients({ redis: 'redis://127.0.0.1:6390' })
  t.teardown(() => { fromUrl.pub.disconnect(); fromUrl.sub.disconnect() })
  t.ok(fromUrl.pub instanceof Redis)
  t.match(fromUrl, { ownsPublisher: true, cluster: false })
  t.match((fromUrl.pub as Redis).options, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResubscribe: false, port: 6390 })

  const given = new Redis({ lazyConnect: true, port: 6391 })
  const fromClient = createRedisClients({ redis: given, sharded: true })
  t.teardown(() => { given.disconnect(); fromClient.sub.disconnect() })
  t.equal(fromClient.pub, given)
  t.match(fromClient, { ownsPublisher: false, cluster: false })
  t.match((fromClient.sub as Redis).options, { port: 6391, enableOfflineQueue: false })
})

t.test('wrong options throw FST_WSR_INVALID_OPTION naming the option', async (t) => {
  const cases: Array<[Parameters<typeof createRedisClients>[0], RegExp]> = [
    [{}, /exactly one of redis/],
    [{ redis: 'redis://x', cluster: ['x:1'] }, /exactly one of redis/],
    [{ cluster: [] }, /RedisAdapter\.cluster: expected a non-empty array/],
    [{ cluster: 'x:1' as unknown as string[] }, /RedisAdapter\.cluster: expected a non-empty array/],
    [{ cluster: ['x'] }, /seed node "x" is not "host:port"/],
    [{ cluster: ['x:0'] }, /not "host:port"/],
    [{ cluster: ['x:65536'] }, /not "host:port"/],
    [{ cluster: [7000 as unknown as string] }, /seed node 7000/],
    [{ cluster: ['x:1'], sharded: false }, /RedisAdapter\.sharded/],
    [{ redis: 'redis://x', prefix: 'a{b}:' }, /RedisAdapter\.prefix/],
    [{ redis: {} as unknown as string }, /RedisAdapter\.redis/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => createRedisClients(options), { code: 'FST_WSR_INVALID_OPTION', message }, JSON.stringify(options))
  }
})
