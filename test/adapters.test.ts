import t from 'tap'
import Fastify from 'fastify'
import { RedisAdapter } from '../lib/redis.js'
import { MemoryAdapter, wsRouter, type AdapterHost, type FanoutTarget, type LocalDelivery, type RouterAdapter } from '../lib/index.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis } from './helpers/redis.js'
import { delay, waitFor } from './helpers/wait.js'

// One adapter conformance suite, run against every adapter: what the router
// relies on, whichever adapter holds its connections and rooms.

/** Poll an async condition until it holds or the time runs out. */
async function eventually (condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await delay(10)
  }
}

interface Delivered { target: FanoutTarget, type: string, text: string }

/** A router stand-in: records what an adapter hands it for local delivery. */
function host (): AdapterHost & { delivered: Delivered[] } {
  const delivered: Delivered[] = []
  return {
    delivered,
    log: Fastify({ logger: { level: 'silent' } }).log,
    async deliverLocal (target, type, text): Promise<LocalDelivery> {
      delivered.push({ target, type, text })
      return { targets: 1, failed: [], written: 1, buffered: 0, dropped: 0 }
    }
  }
}

interface Subject {
  /** Two adapters of one deployment (two instances); the memory one has one instance only. */
  make: () => Promise<{ a: RouterAdapter, b: RouterAdapter | null, close: () => Promise<void> }>
}

/** Two attached instances, each with its recording host, as `onReady` attaches them. */
async function attached (subject: Subject): Promise<{ a: RouterAdapter, b: RouterAdapter | null, hostA: ReturnType<typeof host>, hostB: ReturnType<typeof host>, close: () => Promise<void> }> {
  const made = await subject.make()
  const hostA = host()
  const hostB = host()
  await made.a.attach?.(hostA)
  await made.b?.attach?.(hostB)
  return { ...made, hostA, hostB }
}

function conformance (name: string, subject: Subject): void {
  t.test(`${name}: connections, rooms and local targets`, async (t) => {
    const { a, close } = await attached(subject)
    t.teardown(close)
    a.addConnection('c1', 'alice')
    a.addConnection('c2', 'alice')
    a.addConnection('c3', 'bob')
    t.ok(a.join('c1', 'r'))
    t.notOk(a.join('c1', 'r'), 'joining twice is false')
    t.ok(a.join('c3', 'r'))
    t.ok(a.join('c3', 's'))
    t.notOk(a.join('unknown', 'r'), 'an unknown connection joins nothing')
    t.ok(a.isMember('c1', 'r'))
    t.notOk(a.isMember('c2', 'r'))
    t.same([...a.roomsOf('c3')].sort(), ['r', 's'])
    t.equal(a.roomCount('c3'), 2)
    t.same(a.localTargets({ kind: 'room', room: 'r' }).sort(), ['c1', 'c3'])
    t.same(a.localTargets({ kind: 'room', room: 'r', except: 'c1' }), ['c3'])
    t.same(a.localTargets({ kind: 'user', userId: 'alice' }).sort(), ['c1', 'c2'])
    t.same(a.localTargets({ kind: 'all' }).sort(), ['c1', 'c2', 'c3'])
    t.same(a.counts(), { users: 2, rooms: 2 })
    t.ok(a.leave('c3', 's'))
    t.notOk(a.leave('c3', 's'), 'leaving twice is false')
    t.same(a.counts(), { users: 2, rooms: 1 }, 'a room disappears with its last member')
    a.removeConnection('c3')
    t.notOk(a.isMember('c3', 'r'), 'a removed connection left every room')
    t.same(a.roomsOf('c3'), [])
    t.same(a.localTargets({ kind: 'room', room: 'r' }), ['c1'])
    t.same(a.counts(), { users: 1, rooms: 1 })
  })

  t.test(`${name}: presence and members, across instances`, async (t) => {
    const { a, b, close } = await attached(subject)
    t.teardown(close)
    a.addConnection('a1', 'alice')
    a.join('a1', 'lobby')
    b?.addConnection('b1', 'alice')
    b?.join('b1', 'lobby')
    const expected = b === null ? 1 : 2
    await eventually(async () => (await a.presence('alice')).connections === expected, 5000, 'presence')
    t.same(await a.presence('alice'), { online: true, connections: expected })
    t.same(await a.presence('nobody'), { online: false, connections: 0 })
    const online = await a.onlineUsers()
    t.same(online.find((u) => u.userId === 'alice')?.connections, expected)
    await eventually(async () => (await a.members('lobby')).length === expected, 5000, 'members')
    t.same((await a.members('lobby')).map((m) => m.userId), Array(expected).fill('alice'))
    a.removeConnection('a1')
    await eventually(async () => (await a.presence('alice')).connections === expected - 1, 5000, 'presence after removal')
  })

  t.test(`${name}: publish reaches the other instances' local delivery, never the publisher's`, async (t) => {
    const { a, b, hostA, hostB, close } = await attached(subject)
    t.teardown(close)
    a.addConnection('a1', 'alice')
    a.join('a1', 'lobby')
    b?.addConnection('b1', 'bob')
    b?.join('b1', 'lobby')
    // Subscriptions follow membership: give a broker a moment to see them.
    await new Promise((resolve) => setTimeout(resolve, b === null ? 0 : 200))
    const outcome = await a.publish({ kind: 'room', room: 'lobby' }, '{"type":"m"}', { type: 'm', droppable: false })
    if (b === null) {
      t.equal(outcome, null, 'a single-instance adapter has no remote part')
    } else {
      t.ok(outcome !== null && outcome.error === undefined, 'published')
      await waitFor(() => hostB.delivered.length === 1, 5000, 'delivery on the other instance')
      t.match(hostB.delivered[0], { type: 'm', text: '{"type":"m"}', target: { kind: 'room', room: 'lobby' } })
    }
    t.same(hostA.delivered, [], 'the publisher delivers locally itself, not through the adapter')
  })
}

conformance('MemoryAdapter', {
  make: async () => {
    const a = new MemoryAdapter()
    return { a, b: null, close: async () => { await a.close() } }
  }
})

const unavailable = redisUnavailableReason()
if (unavailable !== undefined) {
  if (mustRunRedisTests()) t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${unavailable}`)
  else t.test('RedisAdapter conformance', { skip: unavailable }, async () => {})
} else {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  let deployment = 0
  conformance('RedisAdapter', {
    make: async () => {
      // A fresh key prefix per test: each one is its own deployment.
      const prefix = `conf${++deployment}:`
      const a = new RedisAdapter({ redis: redis.url, prefix })
      const b = new RedisAdapter({ redis: redis.url, prefix })
      return { a, b, close: async () => { await a.close(); await b.close() } }
    }
  })
}

t.test('singleInstance: true for the MemoryAdapter, false once a subclass publishes to other instances (a fan-out with no local target still goes out)', async (t) => {
  t.equal(new MemoryAdapter().singleInstance, true)
  class ToOthers extends MemoryAdapter {
    readonly published: string[] = []
    override async publish (_target: FanoutTarget, text: string): Promise<{ instances: number }> {
      this.published.push(text)
      return { instances: 1 }
    }
  }
  const adapter = new ToOthers()
  t.equal(adapter.singleInstance, false)
  const app = Fastify({ logger: false })
  await app.register(wsRouter, { environment: 'test', adapter })
  await app.ready()
  t.teardown(() => app.close())
  const result = await app.wsRouter.sendToRoom('members-elsewhere', 'news', { n: 1 })
  t.equal(adapter.published.length, 1, 'published although no local connection is in the room')
  t.match(result, { ok: true, targets: 0, remote: { instances: 1 } })
})
