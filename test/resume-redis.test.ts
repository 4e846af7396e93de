import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter, type WsRouterOptions } from '../lib/index.js'
import { RedisAdapter, RedisResumeStore } from '../lib/redis.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis, type TestRedis } from './helpers/redis.js'
import { delay, waitFor } from './helpers/wait.js'
import { stallSubscriber } from './helpers/stall.js'
import { heldAgent } from './helpers/held-agent.js'

// Issue 12 (resume-redis): resumable delivery across instances, over real
// sockets, with two routers on one real redis-server (RedisAdapter +
// RedisResumeStore): a client leaves one instance and resumes on the other
// while a sender keeps sending to its room; Redis down during a resume.

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) {
  t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${unavailable}`)
}

interface Instance { app: FastifyInstance, url: string, adapter: RedisAdapter }

/** One router with the default resume options but the store: the Redis one (and `storeTimeoutMs` when given). */
async function instance (redis: TestRedis, instanceId: string, prefix: string, storeTimeoutMs?: number, agent?: WsRouterOptions['agent']): Promise<Instance> {
  const app = Fastify({ logger: false })
  const adapter = new RedisAdapter({ redis: redis.url, instanceId, prefix })
  const store = new RedisResumeStore({ redis: redis.url, prefix })
  await store.ready()
  await app.register(wsRouter, {
    environment: 'test',
    rateLimit: false,
    adapter,
    resume: storeTimeoutMs === undefined ? { store } : { store, storeTimeoutMs },
    ...(agent === undefined ? {} : { agent })
  })
  // A room message numbered by its sender, so the receiver can check completeness and order.
  app.wsRouter.on('say', { schema: Type.Object({ room: Type.String(), n: Type.Integer() }), replyType: 'said' }, async (payload, ctx) => {
    const result = await app.wsRouter.sendToRoom(payload.room, 'heard', { n: payload.n }, { except: ctx.connectionId })
    return { ok: result.ok }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, adapter, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws` }
}

async function joined (client: TestClient, room: string): Promise<void> {
  client.send({ type: 'join', id: `join-${room}`, payload: { room } })
  await client.next((f) => f.id === `join-${room}`)
}

const heard = (frames: Frame[]): Array<{ seq: number, n: number }> =>
  frames.filter((f) => f.type === 'heard').map((f) => ({ seq: (f as unknown as { seq: number }).seq, n: f.payload.n as number }))

t.test('resume across instances on a real redis-server', { skip: unavailable }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())

  t.test('a client leaves A and resumes on B, and back, while a sender keeps sending: nothing missing, duplicated or out of order', async (t) => {
    const a = await instance(redis, 'A', 'x1:')
    const b = await instance(redis, 'B', 'x1:')
    t.teardown(async () => { await a.app.close(); await b.app.close() })
    const sender = await connect(`${b.url}?user=bob`)
    // Another member of the room on each instance, as in a real room (and a control that never leaves).
    const stayA = await connect(`${a.url}?user=carol`)
    const stayB = await connect(`${b.url}?user=dave`)
    let alice = await connect(`${a.url}?user=alice`)
    t.teardown(() => { for (const c of [sender, stayA, stayB, alice]) c.ws.terminate() })
    const hello = await alice.next('connection_established')
    let token = hello.payload.resume.token as string
    for (const client of [stayA, stayB, alice]) await joined(client, 'lobby')
    await delay(200) // subscriptions are asynchronous (docs/scaling.md)

    // A steady stream: one message every 5 ms from the sender on B.
    let n = 0
    const sending = { on: true }
    const pump = (async () => {
      while (sending.on) {
        sender.send({ type: 'say', id: `s${++n}`, payload: { room: 'lobby', n } })
        await delay(5)
      }
    })()
    const received: Array<{ seq: number, n: number }> = []
    const instances = [a, b]
    let lastSeq = 0
    for (let hop = 1; hop <= 8; hop++) {
      await delay(80 + Math.floor(Math.random() * 60))
      alice.ws.terminate()
      received.push(...heard(alice.frames))
      lastSeq = received.at(-1)?.seq ?? 0
      await delay(30 + Math.floor(Math.random() * 100))
      const target = instances[hop % 2] as Instance
      alice = await connect(`${target.url}?user=alice&resume=${encodeURIComponent(token)}&lastSeq=${lastSeq}`)
      const established = await alice.next('connection_established')
      t.equal(established.payload.connectionId, hello.payload.connectionId, `hop ${hop}: the same session on ${hop % 2 === 1 ? 'B' : 'A'}`)
      const resumed = await alice.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
      t.equal(resumed.type, 'resumed', `hop ${hop}: resumed`)
      t.equal(resumed.payload.gap, undefined, `hop ${hop}: no gap`)
      token = established.payload.resume.token as string
    }
    await delay(150)
    sending.on = false
    await pump
    const last = n
    await waitFor(() => heard(alice.frames).some((f) => f.n === last), 5000, 'the last message')
    received.push(...heard(alice.frames))

    const ns = received.map((f) => f.n)
    const first = ns[0] as number
    t.same(ns, Array.from({ length: last - first + 1 }, (_, i) => first + i), `every message from ${first} to ${last}, once, in order (${ns.length} received)`)
    t.same(received.map((f) => f.seq), Array.from({ length: received.length }, (_, i) => (received[0]?.seq ?? 1) + i), 'seqs without hole or repeat')
    await waitFor(() => heard(stayA.frames).length === last && heard(stayB.frames).length === last - 0, 5000, 'the members who stayed')
    t.equal(heard(stayA.frames).length, last, 'the member who stayed on A got every message')
    const statsB = b.app.wsRouter.getStats().resume
    const statsA = a.app.wsRouter.getStats().resume
    t.equal((statsA?.resumed ?? 0) + (statsB?.resumed ?? 0), 8, 'eight resumes counted')
  })

  t.test('the fence: events published before the resume that the old instance handles only later are replayed, once, in order', async (t) => {
    // Alice parked on A; the sender on a third instance C, so B never sees the events itself.
    const a = await instance(redis, 'A3', 'x3:')
    const b = await instance(redis, 'B3', 'x3:')
    const c = await instance(redis, 'C3', 'x3:')
    t.teardown(async () => { await a.app.close(); await b.app.close(); await c.app.close() })
    const sender = await connect(`${c.url}?user=bob`)
    // Another member of the room, on C: the fence's markers travel on the room's channel, and are never a frame to anyone.
    const carol = await connect(`${c.url}?user=carol`)
    let alice = await connect(`${a.url}?user=alice`)
    t.teardown(() => { sender.ws.terminate(); carol.ws.terminate(); alice.ws.terminate() })
    const hello = await alice.next('connection_established')
    await joined(alice, 'lobby')
    await joined(carol, 'lobby')
    await delay(100) // A's subscription to the room (docs/scaling.md)
    alice.ws.terminate()
    await waitFor(() => (a.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'parked')

    // A falls behind: three room messages reach Redis, A does not handle them yet.
    const stall = stallSubscriber(a.adapter)
    for (let n = 1; n <= 3; n++) {
      sender.send({ type: 'say', id: `s${n}`, payload: { room: 'lobby', n } })
      await sender.next((f) => f.id === `s${n}`)
    }
    await waitFor(() => stall.held() >= 3, 5000, 'A to have the three messages waiting')

    const started = Date.now()
    alice = await connect(`${b.url}?user=alice&resume=${encodeURIComponent(hello.payload.resume.token as string)}&lastSeq=0`)
    const stalledMs = 400
    await delay(stalledMs)
    t.equal(alice.frames.length, 0, 'B answers nothing while A has not confirmed (the fence waits)')
    stall.release()
    const established = await alice.next('connection_established')
    const resumed = await alice.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
    t.equal(established.payload.connectionId, hello.payload.connectionId, 'the same session, on B')
    t.match(resumed, { type: 'resumed', payload: { replayed: 3, lastSeq: 3 } }, 'resumed after replaying the three')
    t.equal(resumed.payload.gap, undefined, 'no gap')
    t.ok(Date.now() - started >= stalledMs, 'answered only after A caught up')
    t.same(heard(alice.frames), [{ seq: 1, n: 1 }, { seq: 2, n: 2 }, { seq: 3, n: 3 }], 'the three, numbered by A, replayed before resumed, once, in order')

    // After the claim, B numbers on; A no longer takes the session's events.
    sender.send({ type: 'say', id: 's4', payload: { room: 'lobby', n: 4 } })
    await waitFor(() => heard(alice.frames).length === 4, 5000, 'the next message')
    await delay(100)
    t.same(heard(alice.frames).slice(3), [{ seq: 4, n: 4 }], 'the next one live, seq 4, once')
    t.same(carol.frames.map((f) => f.type), ['connection_established', 'joined', 'heard', 'heard', 'heard', 'heard'], 'the other member got the four messages and nothing else')
    t.same([...sender.frames, ...alice.frames].filter((f) => !['connection_established', 'joined', 'said', 'heard', 'resumed'].includes(f.type)), [], 'no stray frame anywhere')
  })

  t.test('the fence unanswered within storeTimeoutMs: resume_failed unavailable, and the session stays with its owner', async (t) => {
    const a = await instance(redis, 'A4', 'x4:')
    const b = await instance(redis, 'B4', 'x4:', 500)
    const c = await instance(redis, 'C4', 'x4:')
    t.teardown(async () => { await a.app.close(); await b.app.close(); await c.app.close() })
    const sender = await connect(`${c.url}?user=bob`)
    const alice = await connect(`${a.url}?user=alice`)
    t.teardown(() => { sender.ws.terminate(); alice.ws.terminate() })
    const hello = await alice.next('connection_established')
    const token = encodeURIComponent(hello.payload.resume.token as string)
    await joined(alice, 'lobby')
    await delay(100)
    alice.ws.terminate()
    await waitFor(() => (a.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'parked')
    const stall = stallSubscriber(a.adapter)
    sender.send({ type: 'say', id: 's1', payload: { room: 'lobby', n: 1 } })
    await sender.next((f) => f.id === 's1')

    const started = Date.now()
    const onB = await connect(`${b.url}?user=alice&resume=${token}&lastSeq=0`)
    t.teardown(() => onB.ws.terminate())
    const established = await onB.next('connection_established')
    const failed = await onB.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
    const elapsed = Date.now() - started
    t.not(established.payload.connectionId, hello.payload.connectionId, 'a fresh session on B')
    t.match(failed, { type: 'resume_failed', payload: { reason: 'unavailable', code: 'BROKER_UNAVAILABLE' } })
    t.ok(elapsed >= 450 && elapsed < 3000, `answered after the 500 ms bound, not before and never a hang (${elapsed} ms)`)
    t.equal(b.app.wsRouter.getStats().resume?.failed.unavailable, 1, 'counted as unavailable')

    // A catches up; the session was never taken from it: a resume on A replays the message.
    stall.release()
    await waitFor(() => (a.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'still parked on A')
    await delay(100)
    const onA = await connect(`${a.url}?user=alice&resume=${token}&lastSeq=0`)
    t.teardown(() => onA.ws.terminate())
    t.equal((await onA.next('connection_established')).payload.connectionId, hello.payload.connectionId, 'the same session, on A')
    t.match(await onA.next((f) => f.type === 'resumed' || f.type === 'resume_failed'), { type: 'resumed', payload: { replayed: 1 } })
    t.same(heard(onA.frames), [{ seq: 1, n: 1 }], 'the message A held, replayed')
  })

  t.test('the newest connection takes over across instances: a resume on B while the socket on A is still open (half-open)', async (t) => {
    const a = await instance(redis, 'A5', 'x5:')
    const b = await instance(redis, 'B5', 'x5:')
    t.teardown(async () => { await a.app.close(); await b.app.close() })
    const sender = await connect(`${b.url}?user=bob`)
    const alice = await connect(`${a.url}?user=alice`)
    t.teardown(() => { sender.ws.terminate(); alice.ws.terminate() })
    const hello = await alice.next('connection_established')
    await joined(alice, 'lobby')
    await delay(100)
    sender.send({ type: 'say', id: 's1', payload: { room: 'lobby', n: 1 } })
    await waitFor(() => heard(alice.frames).length === 1, 5000, 'the first message')
    // Alice's network goes away unnoticed: her socket stops reading, A still sees it open.
    ;(alice.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    for (let n = 2; n <= 3; n++) {
      sender.send({ type: 'say', id: `s${n}`, payload: { room: 'lobby', n } })
      await sender.next((f) => f.id === `s${n}`)
    }
    const onB = await connect(`${b.url}?user=alice&resume=${encodeURIComponent(hello.payload.resume.token as string)}&lastSeq=1`)
    t.teardown(() => onB.ws.terminate())
    t.equal((await onB.next('connection_established')).payload.connectionId, hello.payload.connectionId, 'the same session, on B')
    const resumed = await onB.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
    t.match(resumed, { type: 'resumed', payload: { replayed: 2, lastSeq: 3 } }, 'resumed, not busy')
    t.same(heard(onB.frames), [{ seq: 2, n: 2 }, { seq: 3, n: 3 }], 'what the half-open socket did not read, replayed once, in order')
    t.equal(a.app.wsRouter.getStats().connections.byState.CLOSING, 1, 'A is closing its socket (the peer does not read the close frame)')
    alice.ws.terminate()
    await waitFor(() => a.app.wsRouter.getStats().connections.open === 0, 5000, 'A\'s socket gone')
    t.equal(a.app.wsRouter.getStats().connections.closedByCode['4001'], 1, 'A closed it with 4001')
    t.equal(b.app.wsRouter.getStats().resume?.failed.busy, 0)
    sender.send({ type: 'say', id: 's4', payload: { room: 'lobby', n: 4 } })
    await waitFor(() => heard(onB.frames).length === 3, 5000, 'the next message')
    t.same(heard(onB.frames).slice(2), [{ seq: 4, n: 4 }], 'live on B, seq 4')
  })

  t.test('an agent run follows its session to another instance: the rest of the run, once each, numbered on, one agent_completed', async (t) => {
    const { agent: slow, release } = heldAgent()
    const a = await instance(redis, 'A6', 'x6:', undefined, slow)
    const b = await instance(redis, 'B6', 'x6:', undefined, slow)
    t.teardown(async () => { await a.app.close(); await b.app.close() })
    const alice = await connect(`${a.url}?user=alice`)
    t.teardown(() => alice.ws.terminate())
    const hello = await alice.next('connection_established')
    alice.send({ type: 'start_agent', id: 'a1', payload: { input: 'go' } })
    const started = await alice.next('agent_started')
    const thinking = await alice.next('agent_thinking') as unknown as { seq: number }
    alice.ws.terminate()
    await waitFor(() => (a.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'parked on A')

    const onB = await connect(`${b.url}?user=alice&resume=${encodeURIComponent(hello.payload.resume.token as string)}&lastSeq=${thinking.seq}`)
    t.teardown(() => onB.ws.terminate())
    t.match(await onB.next((f) => f.type === 'resumed' || f.type === 'resume_failed'), { type: 'resumed', payload: { replayed: 0 } }, 'resumed on B, nothing missed yet')
    // The run on A goes on, now that the session lives on B.
    release()
    await onB.next('agent_completed')
    await delay(100)
    const run = onB.frames.filter((f) => f.type.startsWith('agent_') || f.type.startsWith('tool_'))
    t.same(run.map((f) => [f.type, (f as unknown as { seq: number }).seq]), [
      ['tool_executing', thinking.seq + 1], ['tool_completed', thinking.seq + 2], ['agent_completed', thinking.seq + 3]
    ], 'the rest of the run (progress is droppable), each once, numbered on from the session')
    t.ok(run.every((f) => f.payload.runId === started.payload.runId && f.id === 'a1'), 'the same run, answering the same request')
    t.equal(a.app.wsRouter.getStats().builtins['agent.completed'], 1, 'the run completed on A')
    t.same(a.app.wsRouter.roomsOf(hello.payload.connectionId as string), [], 'A let the session go')
  })

  t.test('Redis down during a resume: resume_failed with reason unavailable and BROKER_UNAVAILABLE, a fresh session, within a bound', async (t) => {
    const a = await instance(redis, 'A2', 'x2:')
    const b = await instance(redis, 'B2', 'x2:')
    t.teardown(async () => { await a.app.close(); await b.app.close() })
    const alice = await connect(`${a.url}?user=alice`)
    const hello = await alice.next('connection_established')
    await joined(alice, 'lobby')
    alice.ws.terminate()
    await waitFor(() => (a.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'parked')
    await redis.stop()
    let again: TestClient
    let established: Frame
    let failed: Frame
    let elapsed: number
    try {
      const started = Date.now()
      again = await connect(`${b.url}?user=alice&resume=${encodeURIComponent(hello.payload.resume.token as string)}&lastSeq=0`)
      t.teardown(() => again.ws.terminate())
      established = await again.next('connection_established')
      failed = await again.next((f) => f.type === 'resumed' || f.type === 'resume_failed')
      elapsed = Date.now() - started
    } finally {
      await redis.start()
    }
    t.not(established.payload.connectionId, hello.payload.connectionId, 'a fresh session')
    t.match(failed, { type: 'resume_failed', payload: { reason: 'unavailable', code: 'BROKER_UNAVAILABLE' } })
    t.ok(elapsed < 2000, `answered in ${elapsed} ms, never a hang`)
    again.send({ type: 'ping', id: 'p1' })
    t.ok(await again.next((f) => f.id === 'p1'), 'the fresh session works')
  })
})
