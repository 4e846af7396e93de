import t from 'tap'
import type { ConnectionStatus } from '../lib/index.js'
import { startServer } from './helpers/server.js'
import { engineOf, heartbeatTick } from './helpers/internals.js'
import { connect } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'

t.test('request.checkConnection reads the real socket state', async (t) => {
  const statuses: ConnectionStatus[] = []
  let checker: (() => ConnectionStatus) | undefined
  const server = await startServer({ highWaterMarkBytes: 1024, heartbeatIntervalMs: 60_000, livenessWindowMs: 60_000 }, (app) => {
    app.wsRouter.on('status', (_payload, ctx) => {
      checker = ctx.request.checkConnection.bind(ctx.request)
      statuses.push(checker())
      return checker()
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  client.send({ type: 'status', id: 1 })
  const reply = await client.next('status_result')
  t.match(reply.payload, { state: 'OPEN', connected: true, alive: true, writable: true, bufferedAmount: Number, lastSeenMs: Number })
  t.ok(reply.payload.lastSeenMs >= 0 && reply.payload.lastSeenMs < 1000)
  client.ws.close()
  await client.closed
  await waitFor(() => server.app.wsRouter.connectionCount === 0)
  const after = checker?.()
  t.match(after, { state: 'CLOSED', connected: false, alive: false, writable: false }, 'after close the same checker says CLOSED')
})

t.test('a plain HTTP request gets a CLOSED status', async (t) => {
  const server = await startServer({}, (app) => {
    app.get('/plain', async (request) => request.checkConnection())
  })
  t.teardown(server.close)
  const response = await server.app.inject('/plain')
  t.match(response.json(), { state: 'CLOSED', connected: false })
})

t.test('heartbeat: a silent peer is terminated, a live one kept (chosen clock)', async (t) => {
  const server = await startServer({ heartbeatIntervalMs: 60_000, livenessWindowMs: 90_000 })
  t.teardown(server.close)
  const silent = await connect(server.url + '?user=silent')
  const live = await connect(server.url + '?user=live')
  await silent.next('connection_established')
  await live.next('connection_established')
  const router = server.app.wsRouter
  const start = Date.now()
  heartbeatTick(router, start + 60_000)
  t.equal(router.connectionCount, 2, 'both inside the window at the first tick')
  live.send({ type: 'ping', id: 1 })
  await live.next('pong')
  // Pretend the live client's frame arrived at +80 s, the silent one's last sign at start.
  for (const status of [...engineOf(router).connections.values()]) {
    if (status.userId === 'live') status.lastSeenAt = start + 80_000
  }
  heartbeatTick(router, start + 120_000)
  const closed = await silent.closed
  t.equal(closed.code, 1006, 'the silent peer was terminated (no close frame)')
  await waitFor(() => router.connectionCount === 1)
  t.equal(router.getStats().heartbeat.terminated, 1)
  live.ws.terminate()
})

t.test('heartbeat (real time): a black-holed peer is gone within 2 × interval', async (t) => {
  const interval = 100
  const server = await startServer({ heartbeatIntervalMs: interval, livenessWindowMs: 150 })
  t.teardown(server.close)
  const blackHole = await connect(server.url, { autoPong: false })
  const live = await connect(server.url)
  await blackHole.next('connection_established')
  const started = Date.now()
  const closed = await blackHole.closed
  const elapsed = Date.now() - started
  t.equal(closed.code, 1006)
  t.ok(elapsed <= 2 * interval + 100, `terminated after ${elapsed} ms`)
  await delay(3 * interval)
  t.equal(live.ws.readyState, live.ws.OPEN, 'the peer that answers pings is kept')
  t.equal(server.app.wsRouter.connectionCount, 1)
  live.ws.terminate()
})

t.test('backpressure: a client that stops reading gets failures, never a false success, then 1013', async (t) => {
  let results: Array<{ ok: boolean, reason?: string }> = []
  const server = await startServer({ highWaterMarkBytes: 64 * 1024, maxBufferedBytes: 256 * 1024, sendTimeoutMs: 300 }, (app) => {
    app.wsRouter.on('flood', async (_payload, ctx) => {
      const chunk = 'x'.repeat(32 * 1024)
      // a producer that does not wait (like a broadcast): 400 × 32 KiB = 12.5 MiB
      const sends = []
      for (let i = 0; i < 400; i++) sends.push(ctx.send('chunk', { i, chunk }))
      results = await Promise.all(sends)
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  await client.next('connection_established')
  const rawSocket = (client.ws as unknown as { _socket: { pause: () => void, resume: () => void } })._socket
  rawSocket.pause()
  client.send({ type: 'flood' })
  await waitFor(() => results.length === 400, 10_000, 'all sends settled')
  const ok = results.filter((r) => r.ok).length
  const reasons = new Set(results.filter((r) => !r.ok).map((r) => r.reason))
  t.ok(ok < 400, `${ok} of 400 confirmed`)
  t.ok(reasons.has('BACKPRESSURE'), 'sends over the mark waited, then failed with BACKPRESSURE')
  t.ok([...reasons].every((reason) => reason === 'BACKPRESSURE' || reason === 'TIMEOUT' || reason === 'NOT_OPEN'), [...reasons].join(','))
  const stats = server.app.wsRouter.getStats()
  const failedTotal = Object.values(stats.sends.failed).reduce((sum, n) => sum + n, 0)
  t.equal(failedTotal, 400 - ok, 'every failure counted')
  t.equal(stats.backpressureCloses, 1)
  rawSocket.resume()
  const closed = await client.closed
  t.equal(closed.code, 1013, 'the stuck client was closed with 1013')
  const received = client.frames.filter((f) => f.type === 'chunk').length
  t.ok(received >= ok, `every confirmed send arrived (${received} received, ${ok} confirmed)`)
})

t.test('a sequential sender to a stalled client gets TIMEOUT instead of hanging', async (t) => {
  let outcome: { ok: boolean, reason?: string } | undefined
  const server = await startServer({ highWaterMarkBytes: 64 * 1024 * 1024, maxBufferedBytes: 64 * 1024 * 1024, sendTimeoutMs: 300 }, (app) => {
    app.wsRouter.on('stream', async (_payload, ctx) => {
      const chunk = 'y'.repeat(256 * 1024)
      for (let i = 0; i < 400; i++) {
        const result = await ctx.send('chunk', { i, chunk })
        if (!result.ok) { outcome = result; break }
      }
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  await client.next('connection_established')
  ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  client.send({ type: 'stream' })
  await waitFor(() => outcome !== undefined, 10_000, 'a failed send')
  t.same(outcome, { ok: false, reason: 'TIMEOUT' })
  client.ws.terminate()
})
