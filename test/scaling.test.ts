import t from 'tap'
import { once } from 'node:events'
import Fastify from 'fastify'
import { wsRouter } from '../lib/index.js'
import { RedisAdapter } from '../lib/redis.js'
import { connect } from './helpers/client.js'
import { freePort, mustRunRedisTests, redisUnavailableReason, startRedis, type TestRedis } from './helpers/redis.js'
import { delay, waitFor } from './helpers/wait.js'
import { getJson, inRoom, spawnInstance as spawnFixture, type Instance } from './helpers/instances.js'

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) {
  t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${unavailable}`)
}

async function spawnInstance (redis: TestRedis, env: Record<string, string> = {}): Promise<Instance> {
  return await spawnFixture({ REDIS_URL: redis.url, ...env })
}

t.test('scale-out on Redis', { skip: unavailable }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())

  t.test('two and three instances share rooms, users and presence', async (t) => {
    const one = await spawnInstance(redis, { INSTANCE_ID: 'one' })
    const two = await spawnInstance(redis, { INSTANCE_ID: 'two' })
    const three = await spawnInstance(redis, { INSTANCE_ID: 'three', PRESENCE_TTL_MS: '1500' })
    t.teardown(async () => { await Promise.all([one.stop(), two.stop(), three.stop()]) })

    const alice1 = await connect(`${one.url}?user=alice`)
    const alice2 = await connect(`${two.url}?user=alice`)
    const bob = await connect(`${two.url}?user=bob`)
    const carol = await connect(`${three.url}?user=carol`)
    t.teardown(() => { for (const c of [alice1, alice2, bob, carol]) c.ws.terminate() })
    for (const client of [alice1, bob, carol]) await inRoom(client, 'lobby')
    await delay(100) // subscriptions are asynchronous: at most once, stated in docs/scaling.md

    alice1.send({ type: 'say', id: 's1', payload: { room: 'lobby', text: 'hello' } })
    const said = await alice1.next('said')
    t.match(said.payload, { ok: true, targets: 0, remote: { instances: 2 } }, 'one publish reached the two other instances')
    t.equal((await bob.next('heard')).payload.text, 'hello', 'bob on instance two heard it')
    t.equal((await carol.next('heard')).payload.text, 'hello', 'carol on instance three heard it')
    t.notOk(alice2.frames.some((f) => f.type === 'heard'), 'alice\'s tab that is not in the room got nothing')

    carol.send({ type: 'dm', id: 'd1', payload: { to: 'alice', text: 'psst' } })
    t.match((await carol.next('dm_sent')).payload, { ok: true, targets: 0, remote: { instances: 2 } })
    t.equal((await alice1.next('dm')).payload.text, 'psst', 'the tab on instance one')
    t.equal((await alice2.next('dm')).payload.text, 'psst', 'the tab on instance two')

    carol.send({ type: 'dm', id: 'd2', payload: { to: 'nobody', text: '?' } })
    t.match((await carol.next((f) => f.id === 'd2')).payload, { ok: false, reason: 'NO_TARGET', remote: { instances: 0 } })

    // an instance with no member of a room receives nothing for it
    alice2.send({ type: 'join', id: 'jq', payload: { room: 'quiet' } })
    await alice2.next((f) => f.id === 'jq')
    await delay(50)
    alice2.send({ type: 'say', id: 'sq', payload: { room: 'quiet', text: 'alone' } })
    t.match((await alice2.next((f) => f.id === 'sq')).payload, { remote: { instances: 0 }, reason: 'NO_TARGET' }, 'nobody else subscribes to an empty room')

    const members = await getJson<Array<{ userId: string }>>(`${three.http}/members/lobby`)
    t.same(members.map((m) => m.userId).sort(), ['alice', 'bob', 'carol'], 'members across instances')
    t.same(await getJson(`${one.http}/presence/alice`), { online: true, connections: 2 }, 'alice: 2 connections on 2 instances')
    const online = await getJson<Array<{ userId: string, connections: number }>>(`${one.http}/online`)
    t.same(online.map((u) => `${u.userId}:${u.connections}`).sort(), ['alice:2', 'bob:1', 'carol:1'])

    // SIGKILL: no clean-up; carol disappears when instance three's presence expires (TTL 1.5 s)
    three.proc.kill('SIGKILL')
    await once(three.proc, 'exit')
    const killedAt = Date.now()
    let carolGoneAfter = -1
    while (Date.now() - killedAt < 5000) {
      const presence = await getJson<{ online: boolean }>(`${one.http}/presence/carol`)
      if (!presence.online) { carolGoneAfter = Date.now() - killedAt; break }
      await delay(100)
    }
    t.ok(carolGoneAfter >= 0 && carolGoneAfter <= 1500 + 500, `carol gone from presence ${carolGoneAfter} ms after SIGKILL (TTL 1 500 ms)`)
    const afterKill = await getJson<Array<{ userId: string }>>(`${one.http}/members/lobby`)
    t.same(afterKill.map((m) => m.userId).sort(), ['alice', 'bob'], 'and from room members')
  })

  t.test('the chat built-ins across instances: joins, typing, user messages, agent events', async (t) => {
    const one = await spawnInstance(redis, { INSTANCE_ID: 'b1' })
    const two = await spawnInstance(redis, { INSTANCE_ID: 'b2' })
    t.teardown(async () => { await Promise.all([one.stop(), two.stop()]) })
    const alice = await connect(`${one.url}?user=alice`)
    const aliceTab = await connect(`${two.url}?user=alice`)
    const bob = await connect(`${two.url}?user=bob`)
    t.teardown(() => { for (const c of [alice, aliceTab, bob]) c.ws.terminate() })
    for (const client of [alice, aliceTab, bob]) await inRoom(client, 'chat')
    await delay(100)

    alice.send({ type: 'typing_started', id: 't1', payload: { room: 'chat' } })
    t.same((await bob.next('typing')).payload, { room: 'chat', userId: 'alice', typing: true }, 'typing crosses instances')
    alice.send({ type: 'user_message', id: 'm1', payload: { room: 'chat', text: 'hi from one', clientMessageId: 'c1' } })
    const ack = await alice.next('message_ack')
    t.match(ack.payload, { room: 'chat', deliveredTo: 0, failed: 0, remoteInstances: 1 }, 'the ack counts the other instance')
    t.match((await bob.next('message')).payload, { userId: 'alice', text: 'hi from one', clientMessageId: 'c1' })
    t.match((await aliceTab.next('message')).payload, { text: 'hi from one' }, 'the sender\'s tab on the other instance gets it too')

    bob.send({ type: 'start_agent', id: 'run', payload: { input: 'ping', room: 'chat' } })
    const completed = await bob.next('agent_completed')
    t.match(completed.payload, { status: 'completed', finalResponse: { text: 'ping' } })
    t.same(bob.frames.filter((f) => f.id === 'run').map((f) => f.type), ['agent_started', 'agent_thinking', 'agent_completed'], 'agent events reach the user on their instance')
  })

  t.test('receipts merge the other instances\' per-connection outcomes', async (t) => {
    const one = await spawnInstance(redis, { INSTANCE_ID: 'r1', RECEIPTS: '1' })
    const two = await spawnInstance(redis, { INSTANCE_ID: 'r2', RECEIPTS: '1' })
    t.teardown(async () => { await Promise.all([one.stop(), two.stop()]) })
    const a = await connect(`${one.url}?user=a`)
    const b1 = await connect(`${two.url}?user=b`)
    const b2 = await connect(`${two.url}?user=b`)
    t.teardown(() => { for (const c of [a, b1, b2]) c.ws.terminate() })
    for (const client of [a, b1, b2]) await inRoom(client, 'r')
    await delay(100)
    a.send({ type: 'say', id: 'x', payload: { room: 'r', text: 'receipt me' } })
    t.match((await a.next('said')).payload, { ok: true, remote: { instances: 1, delivered: 2, failed: [], timedOut: 0 } })
  })

  t.test('sharded pub/sub (SSUBSCRIBE/SPUBLISH) on single-node Redis', async (t) => {
    const one = await spawnInstance(redis, { INSTANCE_ID: 's1', SHARDED: '1' })
    const two = await spawnInstance(redis, { INSTANCE_ID: 's2', SHARDED: '1' })
    t.teardown(async () => { await Promise.all([one.stop(), two.stop()]) })
    const a = await connect(`${one.url}?user=a`)
    const b = await connect(`${two.url}?user=b`)
    t.teardown(() => { a.ws.terminate(); b.ws.terminate() })
    await inRoom(a, 'shard')
    await inRoom(b, 'shard')
    await delay(100)
    a.send({ type: 'say', id: 'x', payload: { room: 'shard', text: 'sharded' } })
    t.match((await a.next('said')).payload, { ok: true, remote: { instances: 1 } })
    t.equal((await b.next('heard')).payload.text, 'sharded')
  })

  t.test('outage: every send during it is reported, delivery resumes within 1 s', { timeout: 60_000 }, async (t) => {
    const one = await spawnInstance(redis, { INSTANCE_ID: 'o1' })
    const two = await spawnInstance(redis, { INSTANCE_ID: 'o2' })
    t.teardown(async () => { await Promise.all([one.stop(), two.stop()]) })
    const sender = await connect(`${one.url}?user=sender`)
    const receiver = await connect(`${two.url}?user=receiver`)
    t.teardown(() => { sender.ws.terminate(); receiver.ws.terminate() })
    await inRoom(sender, 'feed')
    await inRoom(receiver, 'feed')
    await delay(100)

    let sent = 0
    const loop = { running: true }
    const sendLoop = (async () => {
      while (loop.running) {
        sender.send({ type: 'say', id: `m${sent}`, payload: { room: 'feed', text: String(sent) } })
        sent++
        await delay(20)
      }
    })()
    await delay(500)
    await redis.stop()
    const stoppedAt = Date.now()
    await delay(2000)
    await redis.start()
    const restartedAt = Date.now()
    // wait until traffic flows again
    let resumedAfter = -1
    while (Date.now() - restartedAt < 5000) {
      const heardAfterRestart = receiver.frames.some((f) => f.type === 'heard' && f.timestamp > restartedAt)
      if (heardAfterRestart) { resumedAfter = Date.now() - restartedAt; break }
      await delay(10)
    }
    await delay(500)
    loop.running = false
    await sendLoop
    await waitFor(() => sender.frames.filter((f) => f.type === 'said').length === sent, 5000, 'a reply for every send')

    const heard = new Set(receiver.frames.filter((f) => f.type === 'heard').map((f) => f.payload.text as string))
    const replies = sender.frames.filter((f) => f.type === 'said')
    let delivered = 0
    let reportedFailed = 0
    let unreported = 0
    for (const reply of replies) {
      const index = String(reply.id).slice(1)
      if (heard.has(index)) delivered++
      else if (reply.payload.ok === false) reportedFailed++
      else unreported++
    }
    t.comment(`sent ${sent}, delivered ${delivered}, reported failed ${reportedFailed}, unreported ${unreported}; outage ${restartedAt - stoppedAt} ms; resumed ${resumedAfter} ms after restart`)
    t.ok(reportedFailed > 0, 'sends during the outage were reported as failed')
    t.equal(unreported, 0, 'no loss went unreported')
    t.equal(delivered + reportedFailed, sent, 'sent = delivered + reported failed')
    t.ok(resumedAfter >= 0 && resumedAfter <= 1000, `delivery resumed ${resumedAfter} ms after Redis returned`)
    const failedReplies = replies.filter((r) => r.payload.ok === false)
    t.ok(failedReplies.some((r) => r.payload.remote?.error === 'BROKER_UNAVAILABLE'), 'BROKER_UNAVAILABLE reported')
    const stats = await getJson<{ broker: { outages: number, connected: boolean, lastOutageMs: number } }>(`${one.http}/stats`)
    t.equal(stats.broker.outages, 1, 'the outage is counted once')
    t.equal(stats.broker.connected, true)
    t.ok(stats.broker.lastOutageMs >= 1500, `its duration is kept (${stats.broker.lastOutageMs} ms)`)
  })
})

t.test('requireBroker: ready() rejects when Redis cannot be reached; without it the server starts degraded', { skip: unavailable }, async (t) => {
  const port = await freePort()
  const strict = Fastify()
  strict.register(wsRouter, { environment: 'test', adapter: new RedisAdapter({ redis: `redis://127.0.0.1:${port}`, requireBroker: true, connectTimeoutMs: 300 }) })
  await t.rejects(async () => { await strict.ready() }, { code: 'FST_WSR_BROKER_UNAVAILABLE' })
  await strict.close()

  const lenient = Fastify({ logger: false })
  await lenient.register(wsRouter, { environment: 'test', adapter: new RedisAdapter({ redis: `redis://127.0.0.1:${port}` }) })
  await lenient.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => lenient.close())
  t.match(lenient.wsRouter.getStats().broker, { connected: false, degraded: true })
  const address = lenient.server.address() as { port: number }
  const client = await connect(`ws://127.0.0.1:${address.port}/ws?user=x`)
  await client.next('connection_established')
  const result = await lenient.wsRouter.sendToUser('x', 'hello', {})
  t.match(result, { targets: 1, delivered: 1, ok: false, remote: { error: 'BROKER_UNAVAILABLE' } }, 'local delivery still happens; the remote part is reported')
  client.ws.terminate()
})
