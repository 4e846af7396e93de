import t from 'tap'
import { startServer } from './helpers/server.js'
import { connect, type TestClient } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

t.test('a client that stops reading: buffer under the cap, BACKPRESSURE, 1013; 50 others served meanwhile', async (t) => {
  const cap = 512 * 1024
  const server = await startServer({ highWaterMarkBytes: 128 * 1024, maxBufferedBytes: cap, sendTimeoutMs: 500, maxConnectionsPerUser: 0 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const slow = await connect(`${server.url}?user=slow`)
  const slowId = (await slow.next('connection_established')).payload.connectionId as string
  const others: TestClient[] = []
  for (let i = 0; i < 50; i++) others.push(await connect(`${server.url}?user=o${i}`))
  for (const client of [slow, ...others]) {
    client.send({ type: 'join', id: 'j', payload: { room: 'all' } })
    await client.next('joined')
  }
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()

  let maxBuffered = 0
  const watch = setInterval(() => {
    const status = router.connectionStatus(slowId)
    if (status !== undefined) maxBuffered = Math.max(maxBuffered, status.bufferedAmount)
  }, 1)
  // Fill the stalled client's kernel buffers and then its send buffer up to the mark.
  const filler = 'f'.repeat(256 * 1024)
  for (let i = 0; i < 200; i++) {
    const outcome = await router.sendTo(slowId, 'filler', { filler }, { droppable: true })
    if (!outcome.ok) break
  }
  t.ok(router.connectionStatus(slowId)?.writable === false, 'the stalled client is no longer writable')
  const started = Date.now()
  const chunk = 'm'.repeat(1024)
  const results = await Promise.all(Array.from({ length: 100 }, async (_, i) => await router.sendToRoom('all', 'update', { i, chunk })))
  clearInterval(watch)
  const failedForSlow = results.flatMap((r) => r.failed).filter((f) => f.connectionId === slowId)
  t.ok(failedForSlow.some((f) => f.reason === 'BACKPRESSURE'), 'the slow client\'s sends report BACKPRESSURE')
  t.ok(results.every((r) => r.failed.every((f) => f.connectionId === slowId)), 'only the slow client has failures')
  t.ok(maxBuffered <= cap, `buffered bytes peaked at ${maxBuffered}, cap ${cap}`)
  for (const client of others) {
    await waitFor(() => client.frames.filter((f) => f.type === 'update').length === 100, 10_000, 'every update at every reader')
  }
  const readersDone = Date.now() - started
  t.ok(results.every((r) => r.delivered === 50), 'every fan-out reached the 50 readers')
  t.comment(`50 readers had all 100 updates ${readersDone} ms after the first fan-out`)
  ;(slow.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
  const closed = await slow.closed
  t.equal(closed.code, 1013)
  t.equal(router.getStats().backpressureCloses, 1)
  for (const client of others) client.ws.terminate()
})

t.test('droppable sends are dropped and counted for a slow client, not waited on', async (t) => {
  const server = await startServer({ highWaterMarkBytes: 64 * 1024 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const slow = await connect(server.url)
  const id = (await slow.next('connection_established')).payload.connectionId as string
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const blob = 'd'.repeat(256 * 1024)
  const outcomes = []
  for (let i = 0; i < 40; i++) outcomes.push(await router.sendTo(id, 'progress', { i, blob }, { droppable: true }))
  const dropped = outcomes.filter((o) => !o.ok && o.reason === 'DROPPED').length
  t.ok(dropped > 0, `${dropped} dropped`)
  t.equal(router.getStats().dropped.progress, dropped)
  t.equal(router.getStats().backpressureCloses, 0, 'dropping is not a reason to close')
  t.notOk(server.logs.some((line) => line.reason === 'DROPPED'), 'drops are counted, not logged')
  slow.ws.terminate()
})
