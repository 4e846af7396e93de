import t from 'tap'
import { startServer } from './helpers/server.js'
import { heartbeatTick } from './helpers/internals.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

t.test('1 000 frames in a burst: RATE_LIMITED with ids, other clients still answered', async (t) => {
  const server = await startServer({ rateLimit: { messagesPerSecond: 100, burst: 200 } })
  t.teardown(server.close)
  const flooder = await connect(server.url)
  const other = await connect(server.url)
  t.teardown(() => { flooder.ws.terminate(); other.ws.terminate() })
  await flooder.next('connection_established')
  for (let i = 0; i < 1000; i++) flooder.send({ type: 'ping', id: i })
  other.send({ type: 'ping', id: 'other' })
  t.equal((await other.next('pong')).id, 'other', 'another client is answered meanwhile')
  await waitFor(() => flooder.frames.length >= 1001 || flooder.ws.readyState !== flooder.ws.OPEN, 10_000, 'all answers')
  const pongs = flooder.frames.filter((f) => f.type === 'pong').length
  const limited = flooder.frames.filter((f) => f.type === 'error' && f.payload.code === 'RATE_LIMITED')
  t.ok(pongs >= 200 && pongs < 300, `${pongs} pongs: the burst plus what refilled`)
  t.ok(limited.length > 0, `${limited.length} RATE_LIMITED`)
  t.ok(limited.every((f) => typeof f.id === 'number'), 'each refusal carries its frame id')
  const stats = server.app.wsRouter.getStats()
  t.equal(stats.rateLimited, limited.length)
  const warnings = server.logs.filter((line) => line.code === 'RATE_LIMITED')
  t.equal(warnings.length, 1, 'logged once per window, not once per frame')
})

t.test('sustained flooding closes with 1008', async (t) => {
  const server = await startServer({ rateLimit: { messagesPerSecond: 10, burst: 20 } })
  t.teardown(server.close)
  const flooder = await connect(server.url)
  // 10 per second allows 100 refusals per 10 s window; 200 frames at once go past it
  for (let i = 0; i < 200; i++) flooder.send({ type: 'ping', id: i })
  const closed = await flooder.closed
  t.equal(closed.code, 1008)
  await waitFor(() => server.app.wsRouter.connectionCount === 0)
  t.equal(server.app.wsRouter.getStats().abuseCloses, 1)
})

t.test('rateLimit: false lets a burst through', async (t) => {
  const server = await startServer({ rateLimit: false })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  for (let i = 0; i < 500; i++) client.send({ type: 'ping', id: i })
  await client.next((f) => f.type === 'pong' && f.id === 499)
  t.equal(client.frames.filter((f) => f.type === 'pong').length, 500)
})

t.test('maxInFlight: OVERLOADED beyond the cap, and reading pauses', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const server = await startServer({ maxInFlight: 3 }, (app) => {
    app.wsRouter.on('wait', async () => { await gate; return { done: true } })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  for (let i = 0; i < 6; i++) client.send({ type: 'wait', id: i })
  await waitFor(() => client.frames.filter((f) => f.type === 'error').length >= 1, 5000, 'an OVERLOADED error')
  const overloaded = client.frames.filter((f) => f.type === 'error')
  t.ok(overloaded.every((f) => f.payload.code === 'OVERLOADED'))
  release()
  await waitFor(() => client.frames.filter((f) => f.type === 'wait_result').length === 3, 5000, 'the 3 admitted replies')
  client.send({ type: 'ping', id: 'resumed' })
  t.equal((await client.next('pong')).id, 'resumed', 'reading resumed once handlers finished')
  t.equal(server.app.wsRouter.getStats().overloaded, overloaded.length)
  t.equal(overloaded.length + 3, 6, 'every frame got exactly one answer')
})

t.test('idleTimeoutMs closes a connection that sends no frame', async (t) => {
  const server = await startServer({ idleTimeoutMs: 300, heartbeatIntervalMs: 50, livenessWindowMs: 10_000 })
  t.teardown(server.close)
  // The idle clock starts when the server adopts the socket, before connect() resolves.
  const started = Date.now()
  const idle = await connect(`${server.url}?user=idle`)
  const busy = await connect(`${server.url}?user=busy`)
  t.teardown(() => busy.ws.terminate())
  const pinger = setInterval(() => busy.send({ type: 'heartbeat' }), 50)
  const closed = await idle.closed
  clearInterval(pinger)
  const elapsed = Date.now() - started
  t.same(closed, { code: 1001, reason: 'idle timeout' })
  t.ok(elapsed >= 300 && elapsed < 1000, `closed after ${elapsed} ms`)
  t.equal(busy.ws.readyState, busy.ws.OPEN, 'a client that sends frames stays')
  t.equal(server.app.wsRouter.getStats().idleCloses, 1)
})

t.test('Cloud Run preset: a connection at its maximum age gets reconnect then 1012', async (t) => {
  const server = await startServer({ maxConnectionAgeMs: 60_000, heartbeatIntervalMs: 30_000, livenessWindowMs: 120_000 })
  t.teardown(server.close)
  const client = await connect(server.url)
  await client.next('connection_established')
  heartbeatTick(server.app.wsRouter, Date.now() + 30_000)
  client.send({ type: 'ping', id: 'probe' })
  await client.next('pong')
  t.notOk(client.frames.some((f) => f.type === 'reconnect'), 'not before its age')
  heartbeatTick(server.app.wsRouter, Date.now() + 61_000)
  const reconnect = await client.next('reconnect')
  t.equal(reconnect.payload.reason, 'max_connection_age')
  t.type(reconnect.payload.retryAfterMs, 'number')
  const closed = await client.closed
  t.equal(closed.code, 1012)
})
