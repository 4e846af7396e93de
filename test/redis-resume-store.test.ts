import t from 'tap'
import net from 'node:net'
import { Redis } from 'ioredis'
import Fastify from 'fastify'
import { RedisAdapter, RedisResumeStore } from '../lib/redis.js'
import type { AdapterHost, LocalDelivery } from '../lib/index.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis } from './helpers/redis.js'
import { delay } from './helpers/wait.js'
import { resumeStoreConformance } from './helpers/resume-store-conformance.js'

// The Redis resume store on its own, on a real redis-server: what only a
// shared store has (ownership moving between instances, owners' liveness,
// the keys' layout and expiry) and its faults (Redis stopped, Redis not
// answering). The behaviour every store shares is the conformance suite's.

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) {
  t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${unavailable}`)
}

let sessions = 0
function session (userId = 'alice', owner = 'A'): { sessionId: string, userId: string, secretHash: string, owner: string } {
  sessions++
  return { sessionId: `s${sessions}-${process.pid}`, userId, secretHash: `hash-${sessions}`, owner }
}

function events (from: number, to: number, size = 10): Array<{ seq: number, text: string, mid: string }> {
  const out = []
  for (let seq = from; seq <= to; seq++) out.push({ seq, text: `{"n":${seq},"pad":"${'x'.repeat(Math.max(0, size - 20))}"}`, mid: `m${seq}` })
  return out
}

// The conformance suite every store passes, on a real redis-server and real time (a short window).
if (unavailable === undefined) {
  const shared = startRedis()
  t.teardown(async () => { await (await shared).close() })
  resumeStoreConformance('redis store', {
    make: async (limits) => {
      const store = new RedisResumeStore({ redis: (await shared).url, prefix: 'conf:', ...limits })
      await store.ready()
      return store
    },
    advance: async (ms) => { await delay(ms) },
    ttlMs: 600,
    tellsExpired: true,
    namespace: `-${process.pid}`
  })
}

t.test('options are checked at construction', async (t) => {
  t.throws(() => new RedisResumeStore({}), { code: 'FST_WSR_INVALID_OPTION', message: /RedisResumeStore/ })
  t.throws(() => new RedisResumeStore({ redis: 'redis://127.0.0.1:1', maxEvents: 0 }), { code: 'FST_WSR_INVALID_OPTION', message: /RedisResumeStore\.maxEvents/ })
  t.throws(() => new RedisResumeStore({ redis: 'redis://127.0.0.1:1', prefix: 'a{b}' }), { code: 'FST_WSR_INVALID_OPTION', message: /RedisResumeStore\.prefix/ })
})

t.test('RedisResumeStore on a real redis-server', { skip: unavailable }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const inspect = new Redis(redis.url)
  t.teardown(() => inspect.disconnect())
  const open = async (options: Partial<ConstructorParameters<typeof RedisResumeStore>[0]> = {}): Promise<RedisResumeStore> => {
    const store = new RedisResumeStore({ redis: redis.url, prefix: 'rs:', ...options })
    t.teardown(() => store.close())
    await store.ready()
    return store
  }

  t.test('the Redis adapter carries a fan-out\'s mid to the other instance, and nothing when there is none', async (t) => {
    const heard: Array<{ type: string, mid: string | undefined }> = []
    const host = (record: boolean): AdapterHost => ({
      log: Fastify({ logger: { level: 'silent' } }).log,
      async deliverLocal (_target, type, _text, _droppable, mid): Promise<LocalDelivery> {
        if (record) heard.push({ type, mid })
        return { targets: 1, failed: [] }
      }
    })
    const a = new RedisAdapter({ redis: redis.url, prefix: 'mid:', instanceId: 'A' })
    const b = new RedisAdapter({ redis: redis.url, prefix: 'mid:', instanceId: 'B' })
    t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
    await a.attach(host(false))
    await b.attach(host(true))
    b.addConnection('c1', 'alice')
    b.join('c1', 'lobby')
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && (await a.publish({ kind: 'room', room: 'lobby' }, '{"type":"probe"}', { type: 'probe', droppable: true }))?.instances !== 1) await delay(20)
    heard.length = 0
    await a.publish({ kind: 'room', room: 'lobby' }, '{"type":"heard"}', { type: 'heard', droppable: false, mid: 'A:42' })
    await a.publish({ kind: 'room', room: 'lobby' }, '{"type":"plain"}', { type: 'plain', droppable: false })
    while (Date.now() < deadline && heard.length < 2) await delay(10)
    t.same(heard, [{ type: 'heard', mid: 'A:42' }, { type: 'plain', mid: undefined }])
  })

  t.test('ownership moves atomically: the old owner\'s append and park return false after a claim elsewhere', async (t) => {
    const a = await open()
    const b = await open()
    const s = session('alice', 'A')
    await a.create(s, 60_000)
    t.equal(await a.append(s.sessionId, 'A', events(1, 3)), true)
    t.equal(await a.park(s.sessionId, 'A', ['lobby', 'ops'], 60_000), true)
    t.equal(await a.append(s.sessionId, 'A', events(4, 4)), true, 'the owner keeps appending while parked')
    const claimed = await b.claim(s.sessionId, s.secretHash, 'alice', 'B')
    t.same(claimed, { ok: true, rooms: ['lobby', 'ops'], lastSeq: 4, firstSeq: 1 })
    t.equal(await a.append(s.sessionId, 'A', events(5, 5)), false, 'A no longer owns it')
    t.equal(await a.park(s.sessionId, 'A', [], 60_000), false)
    t.equal(await b.append(s.sessionId, 'B', events(5, 6)), true, 'B numbers on')
    t.same((await b.read(s.sessionId, 2, 100)).map((e) => [e.seq, e.mid]), [[3, 'm3'], [4, 'm4'], [5, 'm5'], [6, 'm6']], 'nothing A tried after the claim')
    t.same(await b.claim(s.sessionId, s.secretHash, 'alice', 'C'), { ok: false, reason: 'busy' }, 'a live session is busy')
  })

  t.test('two claims at once: exactly one wins, the other is busy', async (t) => {
    const a = await open()
    const b = await open()
    const c = await open()
    for (let round = 0; round < 20; round++) {
      const s = session('alice', 'A')
      await a.create(s, 60_000)
      await a.park(s.sessionId, 'A', ['r'], 60_000)
      const results = await Promise.all([b.claim(s.sessionId, s.secretHash, 'alice', 'B'), c.claim(s.sessionId, s.secretHash, 'alice', 'C')])
      t.same(results.map((r) => r.ok ? 'ok' : r.reason).sort(), ['busy', 'ok'], `round ${round}`)
    }
  })

  t.test('claim refusals reveal nothing: unknown, forbidden, expired', async (t) => {
    const a = await open()
    const s = session('alice', 'A')
    await a.create(s, 60_000)
    await a.park(s.sessionId, 'A', ['secret-room'], 60_000)
    t.same(await a.claim('no-such-session', s.secretHash, 'alice', 'B'), { ok: false, reason: 'unknown' })
    t.same(await a.claim(s.sessionId, 'forged', 'alice', 'B'), { ok: false, reason: 'unknown' }, 'a wrong secret is unknown')
    t.same(await a.claim(s.sessionId, s.secretHash, 'mallory', 'B'), { ok: false, reason: 'forbidden' }, 'another user\'s session')
    const short = session('alice', 'A')
    await a.create(short, 60_000)
    await a.park(short.sessionId, 'A', [], 400)
    await delay(550) // past the window (400 ms), before the hash's own expiry (800 ms)
    t.same(await a.claim(short.sessionId, short.secretHash, 'alice', 'B'), { ok: false, reason: 'expired' }, 'after the window: expired, not unknown')
    t.equal(await inspect.exists(`rs:{sess:${short.sessionId}}`), 0, 'and its keys are gone')
  })

  t.test('a session parked by an owner that stopped is expired: its stream would end in a silent hole', async (t) => {
    const a = new RedisResumeStore({ redis: redis.url, prefix: 'rs:', heartbeatMs: 100 })
    await a.ready()
    const b = await open()
    const s = session('alice', 'gone')
    await a.create(s, 60_000)
    await a.append(s.sessionId, 'gone', events(1, 2))
    await a.park(s.sessionId, 'gone', ['r'], 60_000)
    await a.close()
    t.same(await b.claim(s.sessionId, s.secretHash, 'alice', 'B'), { ok: false, reason: 'expired' })
  })

  t.test('trimming keeps maxEvents and maxBytes, oldest first, and reports the first held seq', async (t) => {
    const byCount = await open({ maxEvents: 5 })
    const s = session()
    await byCount.create(s, 60_000)
    await byCount.append(s.sessionId, 'A', events(1, 4))
    await byCount.append(s.sessionId, 'A', events(5, 12))
    t.same((await byCount.read(s.sessionId, 0, 100)).map((e) => e.seq), [8, 9, 10, 11, 12])
    await byCount.park(s.sessionId, 'A', [], 60_000)
    t.match(await byCount.claim(s.sessionId, s.secretHash, 'alice', 'B'), { ok: true, lastSeq: 12, firstSeq: 8 })

    const byBytes = await open({ maxBytes: 1000 })
    const big = session()
    await byBytes.create(big, 60_000)
    await byBytes.append(big.sessionId, 'A', events(1, 10, 300))
    const held = await byBytes.read(big.sessionId, 0, 100)
    t.same(held.map((e) => e.seq), [8, 9, 10], 'three events of 300 bytes fit in 1000')
    t.ok(held.reduce((sum, e) => sum + Buffer.byteLength(e.text), 0) <= 1000)
    await byBytes.park(big.sessionId, 'A', [], 60_000)
    t.match(await byBytes.claim(big.sessionId, big.secretHash, 'alice', 'B'), { ok: true, lastSeq: 10, firstSeq: 8 })
  })

  t.test('an append that skips numbers discards what came before the hole, so a resume reports it as a gap', async (t) => {
    const a = await open()
    const s = session()
    await a.create(s, 60_000)
    await a.append(s.sessionId, 'A', events(1, 3))
    await a.append(s.sessionId, 'A', events(6, 7))
    t.same((await a.read(s.sessionId, 0, 100)).map((e) => e.seq), [6, 7])
    await a.park(s.sessionId, 'A', [], 60_000)
    t.match(await a.claim(s.sessionId, s.secretHash, 'alice', 'A'), { ok: true, lastSeq: 7, firstSeq: 6 })
    await t.rejects(a.append(s.sessionId, 'A', events(7, 7)), /seq 7 is not above 7/, 'a seq appended twice is a bug, refused')
  })

  t.test('read pages in order, text and mid intact', async (t) => {
    const a = await open()
    const s = session()
    await a.create(s, 60_000)
    const sent = [{ seq: 1, text: '{"type":"x","payload":{"ü":"€ \\n"}}', mid: 'i1:1' }, { seq: 2, text: '{"type":"y"}' }]
    await a.append(s.sessionId, 'A', sent)
    t.same(await a.read(s.sessionId, 0, 1), [sent[0]])
    t.same(await a.read(s.sessionId, 1, 10), [sent[1]], 'an event without mid has none')
    t.same(await a.read(s.sessionId, 2, 10), [])
    t.same(await a.read('nothing-here', 0, 10), [])
  })

  t.test('keys: one hash tag per session, expiring with the window once parked', async (t) => {
    const a = await open()
    const s = session()
    await a.create(s, 60_000)
    await a.append(s.sessionId, 'A', events(1, 1))
    const keys = (await inspect.keys(`rs:*${s.sessionId}*`)).sort()
    t.same(keys, [`rs:{sess:${s.sessionId}}`, `rs:{sess:${s.sessionId}}:ev`])
    for (const key of keys) t.ok(await inspect.pttl(key) > 50_000, `${key} expires (live: the create TTL)`)
    await a.park(s.sessionId, 'A', ['r'], 5_000)
    const hashTtl = await inspect.pttl(keys[0] as string)
    const streamTtl = await inspect.pttl(keys[1] as string)
    t.ok(streamTtl > 4_000 && streamTtl <= 5_000, `the stream expires with the window (${streamTtl} ms)`)
    t.ok(hashTtl > 9_000 && hashTtl <= 10_000, `the hash one window later, to tell expired from unknown (${hashTtl} ms)`)
    await a.drop(s.sessionId, 'A')
    t.equal(await inspect.exists(...keys), 0, 'drop removes both')
  })

  t.test('Redis stops answering (a frozen server or a partition): operations reject within commandTimeoutMs, no hang', async (t) => {
    // A proxy in front of the real server that can stop forwarding, as a SIGSTOPped Redis would.
    let frozen = false
    const sockets = new Set<net.Socket>()
    const proxy = net.createServer((client) => {
      const server = net.connect(redis.port, '127.0.0.1')
      sockets.add(client).add(server)
      client.on('data', (chunk) => { if (!frozen) server.write(chunk) })
      server.on('data', (chunk) => { if (!frozen) client.write(chunk) })
      client.on('error', () => server.destroy())
      server.on('error', () => client.destroy())
    })
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve))
    t.teardown(() => { for (const socket of sockets) socket.destroy(); proxy.close() })
    const store = await open({ redis: `redis://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`, commandTimeoutMs: 300 })
    const s = session()
    await store.create(s, 60_000)
    frozen = true
    const started = Date.now()
    const outcomes = await Promise.allSettled([
      store.append(s.sessionId, 'A', events(1, 1)),
      store.park(s.sessionId, 'A', [], 60_000),
      store.claim(s.sessionId, s.secretHash, 'alice', 'B'),
      store.read(s.sessionId, 0, 10)
    ])
    const elapsed = Date.now() - started
    for (const outcome of outcomes) t.match(outcome, { status: 'rejected', reason: { code: 'FST_WSR_STORE_UNAVAILABLE' } })
    t.ok(elapsed < 2000, `all four settled in ${elapsed} ms (command timeout 300 ms)`)
  })

  t.test('Redis stopped: every operation rejects with FST_WSR_STORE_UNAVAILABLE at once, and works again after', async (t) => {
    const a = await open()
    const s = session()
    await a.create(s, 60_000)
    await redis.stop()
    try {
      const operations: Array<[string, () => Promise<unknown>]> = [
        ['create', async () => await a.create(session(), 60_000)],
        ['append', async () => await a.append(s.sessionId, 'A', events(1, 1))],
        ['park', async () => await a.park(s.sessionId, 'A', [], 60_000)],
        ['claim', async () => await a.claim(s.sessionId, s.secretHash, 'alice', 'B')],
        ['read', async () => await a.read(s.sessionId, 0, 10)],
        ['drop', async () => await a.drop(s.sessionId, 'A')]
      ]
      for (const [name, operation] of operations) {
        const started = Date.now()
        await t.rejects(operation(), { code: 'FST_WSR_STORE_UNAVAILABLE' }, name)
        t.ok(Date.now() - started < 1000, `${name} failed within 1 s (${Date.now() - started} ms)`)
      }
    } finally {
      await redis.start()
    }
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && a.status().connected !== true) await delay(20)
    await t.resolves(a.create(session(), 60_000), 'the store reconnected by itself')
  })
})
