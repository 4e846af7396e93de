import t, { type Test } from 'tap'
import { createHash } from 'node:crypto'
import type { ResumeEvent, ResumeStore, ResumeStoreLimits } from '../../lib/delivery/store.js'

// Issue 12: the one behaviour suite every resume store passes (memory,
// Redis Streams). Each case builds a fresh store with the bounds it needs.

export interface ResumeStoreSubject {
  /** A fresh, empty store with these bounds; closed by the suite. */
  make: (limits: ResumeStoreLimits) => Promise<ResumeStore>
  /** Let `ms` pass for the store's windows: move a manual clock, or really wait. */
  advance: (ms: number) => Promise<void>
  /** The window the suite parks sessions for (short when time is real). */
  ttlMs: number
  /** Whether the store tells an expired session from one it never had (Redis keys simply vanish). */
  tellsExpired: boolean
  /** A suffix for session ids, so runs sharing a real service never meet. */
  namespace?: string
}

const LIMITS: ResumeStoreLimits = { maxEvents: 100, maxBytes: 1024 * 1024, maxSessions: 100 }

export function hashOf (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

function event (seq: number, body = `m${seq}`, mid?: string): ResumeEvent {
  const text = `{"seq":${seq},"v":1,"type":"room_message","payload":{"text":${JSON.stringify(body)}}}`
  return mid === undefined ? { seq, text } : { seq, text, mid }
}

function seqs (events: readonly ResumeEvent[]): number[] {
  return events.map((e) => e.seq)
}

/**
 * Run the conformance suite as subtests of `t`, named after `name`. Every
 * contract point of `ResumeStore` (lib/delivery/store.ts) is one case.
 */
export function resumeStoreConformance (name: string, subject: ResumeStoreSubject): void {
  let counter = 0
  const ns = subject.namespace ?? ''
  /** A fresh session id per use: real services keep keys between cases. */
  const id = (label: string): string => `${label}-${++counter}${ns}`
  const ttl = subject.ttlMs

  async function fresh (tt: Tap, limits: Partial<ResumeStoreLimits> = {}): Promise<ResumeStore> {
    const store = await subject.make({ ...LIMITS, ...limits })
    tt.teardown(() => store.close())
    return store
  }

  async function session (store: ResumeStore, sessionId: string, owner = 'A', userId = 'alice', secret = `s-${sessionId}`): Promise<void> {
    await store.create({ sessionId, userId, secretHash: hashOf(secret), owner }, ttl * 10)
  }

  t.test(`${name}: appended events are read back in order, byte for byte, after any seq`, async (tt) => {
    const store = await fresh(tt)
    const s = id('order')
    await session(store, s)
    tt.equal(await store.append(s, 'A', [event(1, 'é ✓ "quoted"', 'i1:1'), event(2)]), true)
    tt.equal(await store.append(s, 'A', [event(3), event(4), event(5, 'five', 'i1:5')]), true)
    const all = await store.read(s, 0, 100)
    tt.same(seqs(all), [1, 2, 3, 4, 5])
    tt.equal(all[0]?.text, event(1, 'é ✓ "quoted"').text, 'text kept byte for byte')
    tt.equal(all[0]?.mid, 'i1:1', 'mid kept')
    tt.equal(all[1]?.mid, undefined, 'no mid invented')
    tt.same(seqs(await store.read(s, 2, 2)), [3, 4], 'after 2, a page of 2')
    tt.same(seqs(await store.read(s, 4, 100)), [5])
    tt.same(seqs(await store.read(s, 5, 100)), [], 'nothing after the last')
    tt.same(seqs(await store.read(id('never'), 0, 100)), [], 'an unknown session reads empty')
  })

  t.test(`${name}: only the owner appends; an unknown session takes nothing`, async (tt) => {
    const store = await fresh(tt)
    const s = id('owner')
    await session(store, s, 'A')
    tt.equal(await store.append(s, 'B', [event(1)]), false, 'another owner is refused')
    tt.equal(await store.append(id('nobody'), 'A', [event(1)]), false, 'unknown session')
    tt.same(seqs(await store.read(s, 0, 100)), [], 'the refused append stored nothing')
  })

  t.test(`${name}: park then claim returns the rooms, lastSeq and firstSeq, and moves ownership`, async (tt) => {
    const store = await fresh(tt)
    const s = id('claim')
    await session(store, s, 'A', 'alice', 'secret')
    await store.append(s, 'A', [event(1), event(2), event(3)])
    tt.equal(await store.park(s, 'A', ['lobby', 'ops'], ttl), true)
    tt.equal(await store.append(s, 'A', [event(4)]), true, 'a parked session still takes its owner\'s events')
    const claimed = await store.claim(s, hashOf('secret'), 'alice', 'B')
    tt.same(claimed, { ok: true, rooms: ['lobby', 'ops'], lastSeq: 4, firstSeq: 1 })
    tt.equal(await store.append(s, 'A', [event(5)]), false, 'the old owner is refused after the claim')
    tt.equal(await store.park(s, 'A', [], ttl), false, 'the old owner cannot park it')
    await store.drop(s, 'A')
    tt.equal(await store.append(s, 'B', [event(5)]), true, 'a stale owner\'s drop left it alone; the new owner appends')
    tt.same(seqs(await store.read(s, 2, 100)), [3, 4, 5])
    // Parked again by the new owner, claimed again: the stream goes on.
    tt.equal(await store.park(s, 'B', ['lobby'], ttl), true)
    tt.same(await store.claim(s, hashOf('secret'), 'alice', 'C'), { ok: true, rooms: ['lobby'], lastSeq: 5, firstSeq: 1 })
  })

  t.test(`${name}: calls made without waiting take effect in the order they were made`, async (tt) => {
    // The engine fires create, append and park and handles their outcomes later; a fresh store must not reorder them.
    const store = await fresh(tt)
    const s = id('unawaited')
    const [, appended, parked] = await Promise.all([
      store.create({ sessionId: s, userId: 'alice', secretHash: hashOf('q'), owner: 'A' }, ttl * 10),
      store.append(s, 'A', [event(1)]),
      store.park(s, 'A', ['lobby'], ttl * 10)
    ])
    tt.equal(appended, true, 'the append right after the create is taken')
    tt.equal(parked, true, 'the park right after it parks')
    tt.same(await store.claim(s, hashOf('q'), 'alice', 'B'), { ok: true, rooms: ['lobby'], lastSeq: 1, firstSeq: 1 })
  })

  t.test(`${name}: a session with no events claims with lastSeq 0 and firstSeq 1`, async (tt) => {
    const store = await fresh(tt)
    const s = id('empty')
    await session(store, s, 'A', 'alice', 'k')
    await store.park(s, 'A', [], ttl)
    tt.same(await store.claim(s, hashOf('k'), 'alice', 'A'), { ok: true, rooms: [], lastSeq: 0, firstSeq: 1 })
  })

  t.test(`${name}: claim refusals reveal nothing about a session the caller may not have`, async (tt) => {
    const store = await fresh(tt)
    const s = id('refuse')
    await session(store, s, 'A', 'alice', 'right')
    await store.append(s, 'A', [event(1)])
    tt.same(await store.claim(s, hashOf('right'), 'alice', 'B'), { ok: false, reason: 'busy' }, 'a live session is busy')
    await store.park(s, 'A', ['r'], ttl)
    tt.same(await store.claim(id('none'), hashOf('right'), 'alice', 'B'), { ok: false, reason: 'unknown' }, 'no such session')
    tt.same(await store.claim(s, hashOf('wrong'), 'alice', 'B'), { ok: false, reason: 'unknown' }, 'a forged secret is unknown')
    tt.same(await store.claim(s, hashOf('wrong'), 'mallory', 'B'), { ok: false, reason: 'unknown' }, 'a forged secret of another user is unknown, not forbidden')
    tt.same(await store.claim(s, 'not-hex', 'alice', 'B'), { ok: false, reason: 'unknown' }, 'a malformed hash is unknown')
    tt.same(await store.claim(s, hashOf('right'), 'mallory', 'B'), { ok: false, reason: 'forbidden' }, 'another user with the secret is forbidden')
    // None of the refusals took the session: its user still can.
    const ok = await store.claim(s, hashOf('right'), 'alice', 'B')
    tt.equal(ok.ok, true, 'the refusals changed nothing')
    tt.same(await store.claim(s, hashOf('right'), 'alice', 'C'), { ok: false, reason: 'busy' }, 'a claimed session is busy')
  })

  t.test(`${name}: of two claims at once, exactly one wins and the other is busy`, async (tt) => {
    const store = await fresh(tt)
    const s = id('race')
    await session(store, s, 'A', 'alice', 'k')
    await store.park(s, 'A', [], ttl)
    const results = await Promise.all([
      store.claim(s, hashOf('k'), 'alice', 'B'),
      store.claim(s, hashOf('k'), 'alice', 'C')
    ])
    tt.equal(results.filter((r) => r.ok).length, 1, 'one winner')
    tt.same(results.filter((r) => !r.ok), [{ ok: false, reason: 'busy' }], 'the other is busy')
    const winner = results[0]?.ok === true ? 'B' : 'C'
    const loser = winner === 'B' ? 'C' : 'B'
    tt.equal(await store.append(s, loser, [event(1)]), false, 'the loser does not own it')
    tt.equal(await store.append(s, winner, [event(1)]), true, 'the winner does')
  })

  t.test(`${name}: a parked session expires with its window; a live one does not`, async (tt) => {
    const store = await fresh(tt)
    const parked = id('expire')
    const live = id('live')
    const early = id('early')
    await session(store, parked, 'A', 'alice', 'k')
    await session(store, live, 'A', 'alice', 'k2')
    await session(store, early, 'A', 'alice', 'k3')
    await store.append(parked, 'A', [event(1)])
    await store.park(parked, 'A', [], ttl)
    await store.park(early, 'A', [], ttl)
    await subject.advance(Math.floor(ttl / 2))
    tt.same(await store.claim(early, hashOf('k3'), 'alice', 'B'), { ok: true, rooms: [], lastSeq: 0, firstSeq: 1 }, 'claimed within the window')
    await subject.advance(ttl)
    tt.same(await store.claim(parked, hashOf('k'), 'alice', 'B'), { ok: false, reason: subject.tellsExpired ? 'expired' : 'unknown' })
    tt.same(await store.claim(parked, hashOf('x'), 'alice', 'B'), { ok: false, reason: 'unknown' }, 'an expired session with a forged secret is unknown')
    tt.same(seqs(await store.read(parked, 0, 100)), [], 'its events are gone')
    tt.equal(await store.append(parked, 'A', [event(2)]), false, 'its owner can no longer append')
    tt.equal(await store.append(live, 'A', [event(1)]), true, 'the live session is still there')
    tt.equal(await store.append(early, 'B', [event(1)]), true, 'the claimed session no longer expires')
  })

  t.test(`${name}: maxEvents keeps the newest events; claim reports the first one held`, async (tt) => {
    const store = await fresh(tt, { maxEvents: 10 })
    const s = id('max-events')
    await session(store, s, 'A', 'alice', 'k')
    for (let seq = 1; seq <= 25; seq++) await store.append(s, 'A', [event(seq)])
    tt.same(seqs(await store.read(s, 0, 100)), [16, 17, 18, 19, 20, 21, 22, 23, 24, 25], 'oldest trimmed first')
    tt.same(seqs(await store.read(s, 20, 100)), [21, 22, 23, 24, 25])
    await store.park(s, 'A', [], ttl)
    tt.same(await store.claim(s, hashOf('k'), 'alice', 'A'), { ok: true, rooms: [], lastSeq: 25, firstSeq: 16 })
    tt.ok(store.counts().trimmed >= 15, 'trimmed events are counted')
  })

  t.test(`${name}: maxBytes keeps the newest events within the byte bound, and a larger event alone`, async (tt) => {
    const one = Buffer.byteLength(event(1, 'x'.repeat(100)).text)
    const store = await fresh(tt, { maxBytes: one * 3 + 10 })
    const s = id('max-bytes')
    await session(store, s)
    // Appended in one call: the bound holds within a batch too.
    await store.append(s, 'A', [1, 2, 3, 4, 5].map((seq) => event(seq, 'x'.repeat(100))))
    tt.same(seqs(await store.read(s, 0, 100)), [3, 4, 5])
    await store.append(s, 'A', [event(6, 'y'.repeat(one * 5))])
    tt.same(seqs(await store.read(s, 0, 100)), [6], 'an event over the bound is kept alone')
    await store.append(s, 'A', [event(7, 'é'.repeat(60))])
    tt.same(seqs(await store.read(s, 0, 100)), [7], 'bytes, not characters: the bound counts UTF-8')
  })

  t.test(`${name}: maxSessions evicts the session parked longest ago`, async (tt) => {
    const store = await fresh(tt, { maxSessions: 2 })
    const [a, b, c] = [id('evict-a'), id('evict-b'), id('evict-c')]
    for (const s of [a, b, c]) await session(store, s, 'A', 'alice', s)
    await store.park(a, 'A', [], ttl)
    await store.park(b, 'A', [], ttl)
    await store.park(a, 'A', [], ttl) // parked again: now the newest
    await store.park(c, 'A', [], ttl)
    tt.same(await store.claim(b, hashOf(b), 'alice', 'B'), { ok: false, reason: 'unknown' }, 'the oldest parked is evicted')
    tt.equal((await store.claim(a, hashOf(a), 'alice', 'B')).ok, true)
    tt.equal((await store.claim(c, hashOf(c), 'alice', 'B')).ok, true)
    tt.equal(store.counts().evicted, 1, 'the eviction is counted')
  })

  t.test(`${name}: drop forgets a session for its owner only; create replaces`, async (tt) => {
    const store = await fresh(tt)
    const s = id('drop')
    await session(store, s, 'A', 'alice', 'k')
    await store.append(s, 'A', [event(1)])
    await store.drop(s, 'B')
    tt.same(seqs(await store.read(s, 0, 100)), [1], 'another owner\'s drop changes nothing')
    await store.drop(s, 'A')
    await store.drop(s, 'A')
    tt.same(seqs(await store.read(s, 0, 100)), [], 'dropped (twice: idempotent)')
    tt.equal(await store.append(s, 'A', [event(2)]), false)
    await store.park(s, 'A', [], ttl)
    tt.same(await store.claim(s, hashOf('k'), 'alice', 'A'), { ok: false, reason: 'unknown' })
    await session(store, s, 'A', 'alice', 'k2')
    tt.same(seqs(await store.read(s, 0, 100)), [], 'a new session starts empty')
    tt.equal(await store.append(s, 'A', [event(1)]), true)
  })

  t.test(`${name}: sessions never see each other's events`, async (tt) => {
    const store = await fresh(tt, { maxEvents: 5 })
    const [a, b] = [id('iso-a'), id('iso-b')]
    await session(store, a, 'A', 'alice', 'ka')
    await session(store, b, 'A', 'bob', 'kb')
    for (let seq = 1; seq <= 8; seq++) {
      await store.append(a, 'A', [event(seq, `alice-${seq}`)])
      await store.append(b, 'A', [event(seq, `bob-${seq}`)])
    }
    const texts = (await store.read(a, 0, 100)).map((e) => e.text).join('')
    tt.notMatch(texts, /bob-/, 'no event of b in a')
    tt.same(seqs(await store.read(b, 0, 100)), [4, 5, 6, 7, 8], 'b trimmed by its own bound only')
    await store.park(b, 'A', [], ttl)
    tt.same(await store.claim(b, hashOf('ka'), 'alice', 'B'), { ok: false, reason: 'unknown' }, 'a\'s secret does not open b')
  })

  t.test(`${name}: counts follow sessions, parked sessions and events`, async (tt) => {
    const store = await fresh(tt)
    const [a, b] = [id('count-a'), id('count-b')]
    await session(store, a)
    await session(store, b)
    await store.append(a, 'A', [event(1), event(2)])
    await store.park(b, 'A', [], ttl)
    tt.match(store.counts(), { sessions: 2, parked: 1, events: 2 })
    await store.drop(a, 'A')
    tt.match(store.counts(), { sessions: 1, parked: 1, events: 0 })
  })
}

type Tap = Test
