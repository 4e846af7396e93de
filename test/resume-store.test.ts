import t from 'tap'
import { MemoryResumeStore } from '../lib/delivery/memory-store.js'
import { hashOf, resumeStoreConformance } from './helpers/resume-store-conformance.js'

// Issue 12: the memory resume store through the store conformance suite,
// on a clock the test moves (the Redis store runs the same suite), then
// what only the memory store promises.

let time = 1_000_000
resumeStoreConformance('memory store', {
  make: async (limits) => new MemoryResumeStore({ ...limits, now: () => time }),
  advance: async (ms) => { time += ms },
  ttlMs: 120_000,
  tellsExpired: true
})

t.test('memory store: a long stream stays bounded and readable through its compactions', async (t) => {
  const store = new MemoryResumeStore({ maxEvents: 50 })
  await store.create({ sessionId: 's', userId: 'u', secretHash: hashOf('k'), owner: 'A' }, 0)
  for (let seq = 1; seq <= 5000; seq++) await store.append('s', 'A', [{ seq, text: `{"seq":${seq}}` }])
  const held = await store.read('s', 0, 1000)
  t.equal(held.length, 50)
  t.equal(held[0]?.seq, 4951)
  t.equal(held[49]?.seq, 5000)
  t.same((await store.read('s', 4990, 3)).map((e) => e.seq), [4991, 4992, 4993])
  t.match(store.counts(), { sessions: 1, events: 50, trimmed: 4950 })
})

t.test('memory store: expired parked sessions are released at the next park, without being asked for', async (t) => {
  let now = 0
  const store = new MemoryResumeStore({ now: () => now })
  for (const id of ['a', 'b', 'c']) {
    await store.create({ sessionId: id, userId: 'u', secretHash: hashOf(id), owner: 'A' }, 0)
    await store.append(id, 'A', [{ seq: 1, text: '{"seq":1}' }])
  }
  await store.park('a', 'A', [], 1000)
  await store.park('b', 'A', [], 1000)
  now = 1500
  await store.park('c', 'A', [], 1000)
  t.match(store.counts(), { sessions: 1, parked: 1, events: 1 }, 'a and b released')
  t.same(await store.claim('a', hashOf('a'), 'u', 'B'), { ok: false, reason: 'expired' }, 'still answered as expired')
})
