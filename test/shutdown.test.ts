import t from 'tap'
import { startServer } from './helpers/server.js'
import { connect, tryUpgrade, type TestClient } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

t.test('app.close() with 200 clients, 20 of them not reading', async (t) => {
  const grace = 1500
  let handlerSignal: AbortSignal | undefined
  let lateSend: Promise<{ ok: boolean, reason?: string }> | undefined
  const server = await startServer({ shutdownGraceMs: grace, maxConnectionsPerUser: 0, rateLimit: false, highWaterMarkBytes: 1024 * 1024, maxBufferedBytes: 64 * 1024 * 1024 }, (app) => {
    app.wsRouter.on('long', async (_payload, ctx) => {
      handlerSignal = ctx.signal
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
      lateSend = ctx.send('late', {})
    })
  })
  const clients: TestClient[] = []
  for (let i = 0; i < 200; i++) clients.push(await connect(server.url))
  await waitFor(() => server.app.wsRouter.connectionCount === 200)
  const stalled = clients.slice(0, 20)
  const reading = clients.slice(20)
  // the stalled ones stop reading and the server fills their buffers
  const blob = 'z'.repeat(512 * 1024)
  for (const client of stalled) {
    (client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
    const id = (await client.next('connection_established')).payload.connectionId as string
    // 8 MiB each: far more than the socket buffers take, so their close frame cannot get through
    for (let i = 0; i < 16; i++) server.app.wsRouter.sendTo(id, 'fill', { blob }).catch(() => {})
  }
  await waitFor(() => stalled.every((client) => {
    const status = server.app.wsRouter.connectionStatus(client.frames[0]?.payload.connectionId)
    return status !== undefined && status.bufferedAmount > 1024 * 1024
  }), 5000, 'stalled buffers to fill')
  reading[0]?.send({ type: 'long', id: 'l' })
  await waitFor(() => handlerSignal !== undefined)

  const started = Date.now()
  const closing = server.close()
  await waitFor(() => engineOf(server.app.wsRouter).closing)
  const during = await tryUpgrade(server.url).catch((err: Error) => ({ status: -1, body: err.message }))
  t.ok(during.status === 503 || during.status === -1, `an upgrade during shutdown is refused (${during.status})`)
  await closing
  const elapsed = Date.now() - started
  t.ok(elapsed <= grace + 1000, `close() resolved in ${elapsed} ms (grace ${grace} ms)`)
  const codes = await Promise.all(reading.map(async (client) => (await client.closed).code))
  t.ok(codes.every((code) => code === 1001), `every reading client got 1001 (${[...new Set(codes)].join(',')})`)
  t.equal(handlerSignal?.aborted, true, 'the in-flight handler saw its signal fire')
  t.same(await lateSend, { ok: false, reason: 'NOT_OPEN' }, 'its late send reports NOT_OPEN')
  for (const client of stalled) client.ws.terminate()
})
