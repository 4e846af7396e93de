import t from 'tap'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { wsRouter } from '../lib/index.js'
import { waitFor } from './helpers/wait.js'

/**
 * Found by the soak (`npm run soak`, shutdown phase): `app.close()` used to
 * reject with avvio's AVV_ERR_READY_TIMEOUT ("Plugin did not start in time")
 * when a client did not complete the close handshake and the router's
 * `shutdownGraceMs` was not shorter than Fastify's `pluginTimeout` (both 10 s
 * by default). The drain now starts in `preClose` and is awaited in
 * `onClose`, which `pluginTimeout` does not bound. Short times here
 * (pluginTimeout 1 s, grace 1.5 s); test/shutdown-defaults.test.ts checks
 * the same with the defaults.
 */
t.test('app.close() resolves when shutdownGraceMs outlasts Fastify\'s pluginTimeout and a client stalls', async (t) => {
  const app = Fastify({ pluginTimeout: 1000, logger: false })
  await app.register(wsRouter, { environment: 'test', shutdownGraceMs: 1500 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const ws = new WebSocket(`ws://127.0.0.1:${address.port}/ws`)
  ws.on('error', () => {})
  await new Promise((resolve) => ws.once('message', resolve))
  // A client that never reads again: its close handshake never completes.
  ;(ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const started = Date.now()
  const outcome = await app.close().then(() => 'resolved', (err: { code?: string }) => `rejected (${err.code ?? 'no code'})`)
  const elapsed = Date.now() - started
  ws.terminate()
  t.equal(outcome, 'resolved', `close() ${outcome} after ${elapsed} ms`)
  t.ok(elapsed <= 1500 + 1000, `within grace + 1 s (${elapsed} ms)`)
  await waitFor(() => app.wsRouter.connectionCount === 0, 3000, 'the stalled connection to be released').catch(() => {})
  t.equal(app.wsRouter.connectionCount, 0, 'the stalled connection is terminated and released all the same')
})
