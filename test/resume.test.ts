import t from 'tap'
import type { AgentStep } from '../lib/agent-types.js'
import { startServer, type TestServer } from './helpers/server.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'
import { heldAgent } from './helpers/held-agent.js'
import { MemoryResumeStore } from '../lib/delivery/memory-store.js'

// Issue 12: resumable delivery on one instance, over real sockets with the
// `ws` client: numbering, parking, resume with replay, refusals, gaps.

type Steps = AsyncGenerator<AgentStep, unknown, undefined>

interface Session { client: TestClient, id: string, token: string, windowMs: number }

/** A client of `user` with a fresh session: its id and resume token. */
async function open (server: TestServer, user: string): Promise<Session> {
  const client = await connect(`${server.url}?user=${user}`)
  const hello = await client.next('connection_established')
  return { client, id: hello.payload.connectionId, token: hello.payload.resume.token, windowMs: hello.payload.resume.windowMs }
}

/** Drop the socket the way a network does (no close frame), and wait until the server parked it. */
async function drop (server: TestServer, session: Session, parkedBefore = 0): Promise<void> {
  session.client.ws.terminate()
  await waitFor(() => (server.app.wsRouter.getStats().resume?.parked ?? 0) > parkedBefore, 5000, 'the session to be parked')
}

function resumeUrl (server: TestServer, user: string, token: string, lastSeq: number | string): string {
  return `${server.url}?user=${user}&resume=${encodeURIComponent(token)}&lastSeq=${lastSeq}`
}

const seqs = (frames: Frame[]): number[] => frames.filter((f) => (f as { seq?: number }).seq !== undefined).map((f) => (f as unknown as { seq: number }).seq)

t.test('resume off (the default): the wire is unchanged, no token and no seq', async (t) => {
  const server = await startServer()
  t.teardown(server.close)
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.close())
  const hello = await client.next('connection_established')
  t.equal(hello.payload.resume, undefined)
  await server.app.wsRouter.sendTo(hello.payload.connectionId, 'news', { n: 1 })
  const news = await client.next('news')
  t.notOk('seq' in news, 'no seq field')
  t.equal(server.app.wsRouter.getStats().resume, undefined, 'no resume stats')
})

t.test('default options: a token with the 2-minute window; must-deliver events numbered from 1, others not', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  t.teardown(() => alice.client.close())
  t.equal(alice.windowMs, 120_000)
  t.match(alice.token, /^[0-9a-f-]{36}\.[A-Za-z0-9_-]{32}$/)
  t.ok(alice.token.startsWith(alice.id + '.'), 'the token names the session, which is the connection')
  const router = server.app.wsRouter
  router.join(alice.id, 'lobby')
  await router.sendToRoom('lobby', 'room_event', { n: 1 })
  await router.sendTo(alice.id, 'direct', { n: 2 })
  await router.sendToUser('alice', 'to_user', { n: 3 })
  await router.broadcast('all', { n: 4 })
  await router.sendToRoom('lobby', 'typing', { n: 5 }, { droppable: true })
  alice.client.send({ type: 'ping', id: 'p1' })
  const pong = await alice.client.next('pong')
  const events = await Promise.all(['room_event', 'direct', 'to_user', 'all'].map((type) => alice.client.next(type)))
  t.same(events.map((f) => (f as unknown as { seq: number }).seq), [1, 2, 3, 4], 'seq +1 per event, no holes')
  t.notOk('seq' in pong, 'a reply is not numbered')
  t.notOk('seq' in (await alice.client.next('typing')), 'a droppable frame is not numbered')
  t.notOk('seq' in alice.client.frames[0]!, 'connection_established is not numbered')
})

t.test('a dropped client resumes: same connection id, rooms kept, every missed event once and in order, then resumed, then live', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  router.join(alice.id, 'lobby')
  for (let n = 1; n <= 3; n++) await router.sendToRoom('lobby', 'msg', { n })
  await waitFor(() => alice.client.frames.filter((f) => f.type === 'msg').length === 3)
  await drop(server, alice)
  // Sent while parked: must-deliver ones are kept, a droppable one is not.
  for (let n = 4; n <= 7; n++) {
    const result = await router.sendToRoom('lobby', 'msg', { n })
    t.equal(result.ok, true, `event ${n} to a parked member is accepted`)
  }
  const direct = await router.sendTo(alice.id, 'direct', { n: 8 })
  t.same(direct, { ok: true }, 'sendTo a parked session is accepted')
  await router.sendToRoom('lobby', 'typing', {}, { droppable: true })
  t.ok(router.isMember(alice.id, 'lobby'), 'a parked session keeps its rooms')

  // It saw up to seq 2 (seq 3 was lost with the socket, say).
  const back = await connect(resumeUrl(server, 'alice', alice.token, 2))
  t.teardown(() => back.close())
  const resumed = await back.next('resumed')
  const hello = back.frames[0] as Frame
  t.equal(hello.type, 'connection_established')
  t.equal(hello.payload.connectionId, alice.id, 'the same connection id')
  t.equal(hello.payload.resume.token, alice.token, 'the same token')
  const replayed = back.frames.slice(1, -1)
  t.same(seqs(replayed), [3, 4, 5, 6, 7, 8], 'every missed event, in order, each once')
  t.same(replayed.map((f) => f.payload.n), [3, 4, 5, 6, 7, 8])
  t.notOk(replayed.some((f) => f.type === 'typing'), 'the droppable frame was not kept')
  t.same(resumed.payload, { replayed: 6, lastSeq: 8 })
  t.ok(router.isMember(alice.id, 'lobby'), 'still in its room')
  await router.sendToRoom('lobby', 'msg', { n: 9 })
  const live = await back.next((f) => f.type === 'msg' && f.payload.n === 9)
  t.equal((live as unknown as { seq: number }).seq, 9, 'live traffic continues the numbering')
  t.match(router.getStats().resume, { sessions: 1, parked: 0, resumed: 1, replayedEvents: 6, gaps: 0, droppedWhileAway: 1 })
})

t.test('frames a resuming client pipelines before resumed are queued, then answered once each, in order', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  await drop(server, alice)
  for (let n = 1; n <= 50; n++) await router.sendTo(alice.id, 'msg', { n })
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  // Sent at once, before anything was received.
  for (let i = 1; i <= 5; i++) back.send({ type: 'ping', id: `p${i}` })
  back.send({ type: 'no_such_type', id: 'u1' })
  await back.next((f) => f.id === 'u1')
  const types = back.frames.map((f) => f.type)
  const resumedAt = types.indexOf('resumed')
  t.ok(resumedAt > 0, 'resumed was sent')
  t.equal(types.filter((type) => type === 'msg').length, 50, 'all 50 replayed')
  const answers = back.frames.filter((f) => f.id !== undefined)
  t.same(answers.map((f) => f.id), ['p1', 'p2', 'p3', 'p4', 'p5', 'u1'], 'each answered once, in order')
  t.ok(back.frames.indexOf(answers[0] as Frame) > resumedAt, 'answers come after resumed')
})

t.test('resume refusals: a fresh session with a new id and token, then resume_failed with a reason and a code', async (t) => {
  const server = await startServer({ resume: { windowMs: 300 } })
  t.teardown(server.close)
  const router = server.app.wsRouter

  async function refused (url: string): Promise<{ client: TestClient, hello: Frame, failed: Frame }> {
    const client = await connect(url)
    t.teardown(() => client.close())
    const failed = await client.next('resume_failed')
    const hello = client.frames[0] as Frame
    return { client, hello, failed }
  }

  const alice = await open(server, 'alice')
  router.join(alice.id, 'secret-room')
  await router.sendToRoom('secret-room', 'msg', { text: 'for alice only' })

  await drop(server, alice)
  await router.sendToRoom('secret-room', 'msg', { text: 'still for alice only' })

  const garbage = await refused(resumeUrl(server, 'alice', 'not-a-token', 0))
  t.match(garbage.failed.payload, { reason: 'unknown', code: 'RESUME_UNKNOWN' })
  t.not(garbage.hello.payload.connectionId, alice.id, 'a new connection id')
  t.match(garbage.hello.payload.resume.token, /\./, 'a new token')
  t.not(garbage.hello.payload.resume.token, alice.token)

  const forged = await refused(resumeUrl(server, 'alice', `${alice.id}.${'A'.repeat(32)}`, 0))
  t.match(forged.failed.payload, { reason: 'unknown', code: 'RESUME_UNKNOWN' }, 'a forged secret is unknown, revealing nothing')

  const mallory = await refused(resumeUrl(server, 'mallory', alice.token, 0))
  t.match(mallory.failed.payload, { reason: 'forbidden', code: 'RESUME_FORBIDDEN' })
  t.not(mallory.hello.payload.connectionId, alice.id)
  t.equal(mallory.hello.payload.userId, 'mallory')

  const future = await refused(resumeUrl(server, 'alice', alice.token, 99))
  t.match(future.failed.payload, { reason: 'invalid_seq', code: 'INVALID_RESUME_SEQ' })
  // The token was right but the seq forged: that session is over.
  const after = await refused(resumeUrl(server, 'alice', alice.token, 0))
  t.match(after.failed.payload, { reason: 'unknown' }, 'a session ended by invalid_seq cannot be resumed')

  for (const { client } of [garbage, forged, mallory, future, after]) {
    await delay(20)
    t.notOk(client.frames.some((f) => JSON.stringify(f).includes('alice only')), 'no refused connection saw alice\'s events')
  }
  t.match(router.getStats().resume?.failed, { busy: 0, unknown: 3, forbidden: 1, invalid_seq: 1 })

  // Expired: the window (300 ms) passes.
  const bob = await open(server, 'bob')
  await drop(server, bob)
  await waitFor(() => (router.getStats().resume?.expired ?? 0) === 1, 5000, 'the window to pass')
  const expired = await refused(resumeUrl(server, 'bob', bob.token, 0))
  t.match(expired.failed.payload, { reason: 'expired', code: 'RESUME_EXPIRED' })
  t.notOk(router.isMember(bob.id, 'any'), 'an expired session left its rooms')
  t.equal(router.connectionsOf('bob').filter((id) => id === bob.id).length, 0, 'an expired session left its user list')
})

t.test('lastSeq must be an integer: a malformed one is invalid_seq', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  await drop(server, alice)
  const client = await connect(resumeUrl(server, 'alice', alice.token, '1e3'))
  t.teardown(() => client.close())
  t.match((await client.next('resume_failed')).payload, { reason: 'invalid_seq', code: 'INVALID_RESUME_SEQ' })
})

t.test('events trimmed by the store bound are reported as a gap; the rest is replayed', async (t) => {
  const server = await startServer({ resume: { maxEvents: 5 } })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  await drop(server, alice)
  for (let n = 1; n <= 12; n++) await router.sendTo(alice.id, 'msg', { n })
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  const resumed = await back.next('resumed')
  t.same(resumed.payload, { replayed: 5, lastSeq: 12, gap: { from: 1, to: 7 } })
  t.same(seqs(back.frames), [8, 9, 10, 11, 12])
  t.equal(router.getStats().resume?.gaps, 1)
})

t.test('two connections resuming one session at once: one holds it, the other is told (busy, or closed 4001 once the newer one took over)', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const router = server.app.wsRouter
  for (let round = 0; round < 10; round++) {
    const alice = await open(server, `alice${round}`)
    await drop(server, alice, 0)
    await router.sendTo(alice.id, 'msg', { n: 1 })
    const [a, b] = await Promise.all([connect(resumeUrl(server, `alice${round}`, alice.token, 0)), connect(resumeUrl(server, `alice${round}`, alice.token, 0))])
    t.teardown(() => { a.close(); b.close() })
    const outcomes = await Promise.all([a, b].map((c) => c.next((f) => f.type === 'resumed' || f.type === 'resume_failed')))
    const resumed = [a, b].filter((_, i) => outcomes[i]?.type === 'resumed')
    const refused = [a, b].filter((_, i) => outcomes[i]?.type === 'resume_failed')
    for (const loser of refused) {
      t.match(loser.frames.find((f) => f.type === 'resume_failed')?.payload, { reason: 'busy', code: 'RESUME_BUSY' }, `round ${round}: the refused one is told busy`)
      t.same(seqs(loser.frames), [], `round ${round}: and saw none of the session's events`)
    }
    if (resumed.length === 2) {
      // Both resumed: the second took the session over, and the first was closed with 4001.
      const closes = await Promise.race([Promise.any(resumed.map(async (c) => await c.closed)), delay(2000).then(() => null)])
      t.match(closes, { code: 4001 }, `round ${round}: the first to resume was closed with 4001 when the newer one took over`)
    }
    const holders = [a, b].filter((c) => c.ws.readyState === c.ws.OPEN && outcomes[[a, b].indexOf(c)]?.type === 'resumed')
    t.equal(holders.length, 1, `round ${round}: exactly one connection holds the session`)
    await router.sendTo(alice.id, 'msg', { n: 2 })
    const holder = holders[0] as TestClient
    t.equal((await holder.next((f) => f.type === 'msg' && f.payload.n === 2)).payload.n, 2, `round ${round}: the next event reaches it`)
    await delay(20)
    t.equal([a, b].filter((c) => c.frames.some((f) => f.type === 'msg' && f.payload.n === 2)).length, 1, `round ${round}: and only it`)
    a.close()
    b.close()
    await waitFor(() => router.getStats().connections.open === 0, 2000, 'both closed')
  }
})

t.test('the newest connection takes over: a resume while the old socket is still open (half-open) closes it with 4001 and replays what it missed', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  router.join(alice.id, 'lobby')
  await router.sendToRoom('lobby', 'msg', { n: 1 })
  await alice.client.next((f) => f.type === 'msg')
  // The network goes away without either side noticing: alice's socket stops reading; the server still sees it open.
  const raw = (alice.client.ws as unknown as { _socket: { pause: () => void } })._socket
  raw.pause()
  await router.sendToRoom('lobby', 'msg', { n: 2 })
  await router.sendTo(alice.id, 'msg', { n: 3 })

  // Neither another user with the token nor a forged secret can take it over.
  const mallory = await connect(resumeUrl(server, 'mallory', alice.token, 1))
  t.teardown(() => mallory.close())
  t.match((await mallory.next('resume_failed')).payload, { reason: 'forbidden' })
  const forged = await connect(resumeUrl(server, 'alice', `${alice.id}.${'A'.repeat(32)}`, 1))
  t.teardown(() => forged.close())
  t.match((await forged.next('resume_failed')).payload, { reason: 'unknown' })
  t.equal(router.getStats().resume?.parked, 0, 'the live session was left alone')

  const again = await connect(resumeUrl(server, 'alice', alice.token, 1))
  t.teardown(() => again.close())
  t.equal((await again.next('connection_established')).payload.connectionId, alice.id, 'the same session')
  t.match(await again.next((f) => f.type === 'resumed' || f.type === 'resume_failed'), { type: 'resumed', payload: { replayed: 2, lastSeq: 3 } })
  t.same(again.frames.filter((f) => f.type === 'msg').map((f) => [(f as unknown as { seq: number }).seq, f.payload.n]), [[2, 2], [3, 3]], 'what the old socket did not read, replayed once, in order')
  t.same(router.roomsOf(alice.id), ['lobby'], 'in its rooms')
  await router.sendToRoom('lobby', 'msg', { n: 4 })
  t.match(await again.next((f) => f.type === 'msg' && f.payload.n === 4), { seq: 4 })
  t.equal(router.getStats().resume?.failed.busy, 0, 'not refused as busy')

  // The old socket finally goes: it is counted out, and touches nothing of the session it lost.
  alice.client.ws.terminate()
  // Open now: the resumed one, mallory's and the forged one's fresh sessions.
  await waitFor(() => router.getStats().connections.open === 3, 5000, 'the old socket counted out')
  t.equal(router.getStats().connections.closedByCode['4001'], 1, 'its close counted under 4001')
  t.same(router.roomsOf(alice.id), ['lobby'], 'the session keeps its rooms')
  await router.sendTo(alice.id, 'msg', { n: 5 })
  t.match(await again.next((f) => f.type === 'msg' && f.payload.n === 5), { seq: 5 }, 'and its events')
})

t.test('an agent run goes on while its client is away; the resumed client sees the rest and exactly one agent_completed', async (t) => {
  const { agent: slow, release } = heldAgent()
  const server = await startServer({ resume: true, agent: slow })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  alice.client.send({ type: 'start_agent', id: 'a1', payload: { input: 'go' } })
  const started = await alice.client.next('agent_started')
  const thinking = await alice.client.next('agent_thinking')
  const runId = started.payload.runId
  await drop(server, alice)
  release()
  await waitFor(() => (server.app.wsRouter.getStats().builtins['agent.completed'] ?? 0) === 1, 5000, 'the run to complete while parked')
  const back = await connect(resumeUrl(server, 'alice', alice.token, (thinking as unknown as { seq: number }).seq))
  t.teardown(() => back.close())
  await back.next('resumed')
  await delay(50)
  const types = back.frames.map((f) => f.type)
  t.same(types, ['connection_established', 'tool_executing', 'tool_completed', 'agent_completed', 'resumed'], 'the rest of the run, progress dropped')
  t.equal(types.filter((type) => type === 'agent_completed').length, 1, 'exactly one agent_completed')
  t.ok(back.frames.filter((f) => f.type.startsWith('agent_') || f.type.startsWith('tool_')).every((f) => f.payload.runId === runId && f.id === 'a1'))
})

t.test('the replay rate is bounded per connection', async (t) => {
  const server = await startServer({ resume: { replayRatePerSecond: 100 } })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  await drop(server, alice)
  for (let n = 1; n <= 60; n++) await router.sendTo(alice.id, 'msg', { n })
  const started = Date.now()
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  await back.next('resumed', 10_000)
  // 60 frames at 100/s: at least ~0.5 s (a lower bound only: load can only slow it).
  t.ok(Date.now() - started >= 450, `took ${Date.now() - started} ms`)
  t.equal(seqs(back.frames).length, 60)
})

t.test('a client that closes with 1000 ends its session; a policy close (1008) ends it too', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  alice.client.ws.close(1000)
  await waitFor(() => router.connectionCount === 0)
  t.equal(router.getStats().resume?.parked, 0, 'not parked')
  t.equal(router.getStats().resume?.sessions, 0, 'ended')
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  t.match((await back.next('resume_failed')).payload, { reason: 'unknown' })
})

t.test('past agentGraceMs a parked session\'s run is cancelled, and its agent_completed (cancelled) still waits in the stream', async (t) => {
  async function * endless (_input: string, ctx: { signal: AbortSignal }): Steps {
    yield { type: 'thinking', reasoning: 'start' }
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
    return undefined
  }
  const server = await startServer({ resume: { windowMs: 60_000, agentGraceMs: 200 }, agent: endless })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  alice.client.send({ type: 'start_agent', id: 'a1', payload: { input: 'go' } })
  const thinking = await alice.client.next('agent_thinking')
  await drop(server, alice)
  await waitFor(() => (server.app.wsRouter.getStats().builtins['agent.cancelled'] ?? 0) === 1, 5000, 'the grace to pass')
  t.equal(server.app.wsRouter.getStats().resume?.parked, 1, 'the session is still parked: only the run was given up')
  const back = await connect(resumeUrl(server, 'alice', alice.token, (thinking as unknown as { seq: number }).seq))
  t.teardown(() => back.close())
  await back.next('resumed')
  const completed = back.frames.filter((f) => f.type === 'agent_completed')
  t.equal(completed.length, 1)
  t.match(completed[0]?.payload, { status: 'cancelled' })
})

t.test('parked sessions are bounded: past maxSessions the one parked longest ago ends', async (t) => {
  const server = await startServer({ resume: { maxSessions: 2 } })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const sessions = [await open(server, 'u1'), await open(server, 'u2'), await open(server, 'u3')]
  for (const [i, session] of sessions.entries()) {
    router.join(session.id, 'room')
    await drop(server, session, Math.min(i, 1))
    await delay(5)
  }
  await waitFor(() => router.getStats().resume?.evicted === 1, 5000, 'an eviction')
  t.match(router.getStats().resume, { parked: 2, evicted: 1 })
  t.notOk(router.isMember(sessions[0]!.id, 'room'), 'the evicted session left its room')
  const first = await connect(resumeUrl(server, 'u1', sessions[0]!.token, 0))
  t.teardown(() => first.close())
  t.match((await first.next('resume_failed')).payload, { reason: 'unknown' })
  const third = await connect(resumeUrl(server, 'u3', sessions[2]!.token, 0))
  t.teardown(() => third.close())
  t.same((await third.next('resumed')).payload, { replayed: 0, lastSeq: 0 })
})

t.test('a client too slow for a must-deliver event is closed with 1013, parks, and gets the event on resume', async (t) => {
  const server = await startServer({ resume: true, highWaterMarkBytes: 16 * 1024, maxBufferedBytes: 64 * 1024 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  // The client stops reading: its socket's buffers fill up.
  alice.client.ws.pause()
  const big = 'x'.repeat(8 * 1024)
  let seq = 0
  let closed = false
  let refused = 0
  while (!closed && seq < 2000) {
    const result = await router.sendToUser('alice', 'bulk', { n: ++seq, big })
    if (!result.ok) refused++
    closed = router.getStats().backpressureCloses > 0
  }
  t.ok(closed, `closed with 1013 after ${seq} events`)
  t.equal(refused, 0, 'every event accepted, the one it was closed for too')
  await waitFor(() => router.getStats().resume?.parked === 1, 5000, 'the slow session to park')
  alice.client.ws.terminate()
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  const resumed = await back.next('resumed', 10_000)
  t.equal(resumed.payload.lastSeq, seq)
  const held = seqs(back.frames)
  t.equal(held[held.length - 1], seq, 'the event it was closed for is replayed')
  t.ok(resumed.payload.gap === undefined ? held.length === seq : resumed.payload.gap.from === 1 && held[0] === resumed.payload.gap.to + 1, 'everything else is replayed or reported')
})

t.test('a store that does not answer fails the resume with unavailable within storeTimeoutMs, never a hang', async (t) => {
  const { MemoryResumeStore } = await import('../lib/delivery/memory-store.js')
  const store = new MemoryResumeStore()
  let hang = false
  const claim = store.claim.bind(store)
  store.claim = (...args) => hang ? new Promise(() => {}) : claim(...args)
  const server = await startServer({ resume: { store, storeTimeoutMs: 300 } })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  await drop(server, alice)
  hang = true
  const started = Date.now()
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  const failed = await back.next('resume_failed', 5000)
  t.match(failed.payload, { reason: 'unavailable', code: 'BROKER_UNAVAILABLE' })
  t.ok(Date.now() - started >= 250, 'after the timeout')
  t.equal(server.app.wsRouter.getStats().resume?.failed.unavailable, 1)
  t.ok(server.logs.some((line) => line.msg.includes('resume store did not answer')), 'logged')
  t.notOk(server.logs.some((line) => JSON.stringify(line).includes(alice.token.split('.')[1] as string)), 'the secret is in no log line')
})

t.test('an append the store lost is reported as a gap, not skipped in silence', async (t) => {
  const { MemoryResumeStore } = await import('../lib/delivery/memory-store.js')
  const store = new MemoryResumeStore()
  const append = store.append.bind(store)
  store.append = async (id, owner, events) => events.some((e) => e.seq === 3 || e.seq === 4) ? await Promise.reject(new Error('store down')) : await append(id, owner, events)
  const server = await startServer({ resume: { store } })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  await drop(server, alice)
  for (let n = 1; n <= 6; n++) await router.sendTo(alice.id, 'msg', { n })
  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  const resumed = await back.next('resumed')
  t.same(resumed.payload, { replayed: 4, lastSeq: 6, gap: { from: 3, to: 4 } })
  t.same(seqs(back.frames), [1, 2, 5, 6])
  t.equal(server.logs.filter((line) => line.msg.startsWith('resume store call failed')).length, 1, 'logged once for the session')
  t.equal(router.getStats().resume?.storeFailures, 2, 'each failure counted')
})

t.test('an event forwarded from another instance for a session this one does not hold: counted NOT_OPEN and logged once, nothing sent', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  const alice = await open(server, 'alice')
  t.teardown(() => alice.client.close())
  const before = server.app.wsRouter.getStats().sends.failed.NOT_OPEN ?? 0
  engineOf(server.app.wsRouter).deliverToSession('00000000-0000-4000-8000-000000000000', '{"v":1,"type":"agent_completed","payload":{}}')
  t.equal(server.app.wsRouter.getStats().sends.failed.NOT_OPEN, before + 1, 'counted')
  t.equal(server.logs.filter((l) => l.msg === 'resume: an event forwarded from another instance found no session here').length, 1, 'one log line')
  // A session held here takes it as its own: numbered and delivered.
  engineOf(server.app.wsRouter).deliverToSession(alice.id, '{"v":1,"type":"agent_completed","payload":{"runId":"r"}}')
  t.match(await alice.client.next('agent_completed'), { seq: 1, payload: { runId: 'r' } })
})

t.test('a session whose create failed is created again at its next store call: it parks and resumes, and what it could not store is a reported gap', async (t) => {
  // A store that cannot be reached for a moment: the first create fails, and the appends made before the failure is known.
  const store = new MemoryResumeStore()
  let failing = true
  const create = store.create.bind(store)
  const append = store.append.bind(store)
  store.create = async (session, ttlMs) => {
    if (failing) throw new Error('store unreachable (test)')
    await create(session, ttlMs)
  }
  store.append = async (sessionId, owner, events) => {
    if (failing) throw new Error('store unreachable (test)')
    return await append(sessionId, owner, events)
  }
  const server = await startServer({ resume: { store } })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await open(server, 'alice')
  await delay(20)
  t.equal(router.getStats().resume?.storeFailures, 1, 'the create failure is counted')
  await router.sendTo(alice.id, 'msg', { n: 1 })
  await alice.client.next('msg')
  // The store is back.
  failing = false
  await router.sendTo(alice.id, 'msg', { n: 2 })
  await router.sendTo(alice.id, 'msg', { n: 3 })
  await alice.client.next((f) => f.type === 'msg' && f.payload.n === 3)
  await drop(server, alice)
  await router.sendTo(alice.id, 'msg', { n: 4 })

  const back = await connect(resumeUrl(server, 'alice', alice.token, 0))
  t.teardown(() => back.close())
  t.equal((await back.next('connection_established')).payload.connectionId, alice.id, 'the same session: it was parked, not lost')
  const resumed = await back.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
  t.match(resumed, { type: 'resumed', payload: { replayed: 3, lastSeq: 4, gap: { from: 1, to: 1 } } }, 'seq 1 (appended while the store was away) is reported as a gap')
  t.same(back.frames.filter((f) => f.type === 'msg').map((f) => (f as unknown as { seq: number }).seq), [2, 3, 4], 'the rest replayed')
})
