import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter } from '../lib/index.js'
import { RedisAdapter, RedisResumeStore } from '../lib/redis.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis, type TestRedis } from './helpers/redis.js'
import { delay, waitFor } from './helpers/wait.js'

// Issue 12 (resume-redis): resumable delivery across instances, over real
// sockets, with two routers on one real redis-server (RedisAdapter +
// RedisResumeStore): a client leaves one instance and resumes on the other
// while a sender keeps sending to its room; Redis down during a resume.

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) {
  t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${unavailable}`)
}

interface Instance { app: FastifyInstance, url: string }

/** One router with the default resume options but the store: the Redis one. */
async function instance (redis: TestRedis, instanceId: string, prefix: string): Promise<Instance> {
  const app = Fastify({ logger: false })
  await app.register(wsRouter, {
    environment: 'test',
    rateLimit: false,
    adapter: new RedisAdapter({ redis: redis.url, instanceId, prefix }),
    resume: { store: new RedisResumeStore({ redis: redis.url, prefix }) }
  })
  // A room message numbered by its sender, so the receiver can check completeness and order.
  app.wsRouter.on('say', { schema: Type.Object({ room: Type.String(), n: Type.Integer() }), replyType: 'said' }, async (payload, ctx) => {
    const result = await app.wsRouter.sendToRoom(payload.room, 'heard', { n: payload.n }, { except: ctx.connectionId })
    return { ok: result.ok }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url: `ws://127.0.0.1:${(app.server.address() as { port: number }).port}/ws` }
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
