// Issue 10 §3: with the DEFAULT options (shutdownGraceMs 10 s, Fastify's
// pluginTimeout 10 s), app.close() resolves within shutdownGraceMs + 1 s
// whatever the peers do, and never rejects because of the router's drain.
import t from 'tap'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import { wsRouter, environmentPresets } from '../lib/index.js'
import { logSink } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

const GRACE = environmentPresets.test.shutdownGraceMs
const BOUND = GRACE + 1000

/** A peer that completes the upgrade, then never reads nor answers the close handshake. */
async function stalledPeer (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.on('error', () => {})
  socket.write([
    'GET /ws?user=stalled HTTP/1.1',
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))
  await new Promise<void>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').startsWith('HTTP/1.1 101')) resolve()
      else reject(new Error(`no upgrade: ${chunk.toString('latin1').split('\r\n')[0]}`))
    })
  })
  // From here on nothing is read: the close frame stays unread, never answered.
  socket.pause()
  return socket
}

t.test('defaults: one stalled peer does not make app.close() reject (real sockets)', async (t) => {
  const sink = logSink()
  // No pluginTimeout, no shutdownGraceMs: both at their defaults.
  const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
  await app.register(wsRouter, { environment: 'test' })
  t.equal(app.wsRouter.config.shutdownGraceMs, GRACE, 'the default grace')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const port = (app.server.address() as net.AddressInfo).port
  const stalled = await stalledPeer(port)
  const polite = await connect(`ws://127.0.0.1:${port}/ws?user=polite`)
  await waitFor(() => app.wsRouter.connectionCount === 2)

  const started = Date.now()
  let failure: unknown
  await app.close().catch((err: unknown) => { failure = err })
  const elapsed = Date.now() - started
  t.equal(failure, undefined, `app.close() resolved (${(failure as Error | undefined)?.message ?? 'no error'})`)
  t.ok(elapsed <= BOUND, `within shutdownGraceMs + 1 s (${elapsed} ms, bound ${BOUND} ms)`)
  t.equal((await polite.closed).code, 1001, 'the polite client got 1001')
  t.equal(app.wsRouter.connectionCount, 0, 'no connection is left')
  stalled.destroy()
})

t.test('defaults: app.close() with an injectWS client still open', async (t) => {
  const app = Fastify({ logger: false })
  await app.register(wsRouter, { environment: 'test' })
  await app.ready()
  const client = await app.injectWS('/ws?user=injected')
  const closed = new Promise<number>((resolve) => client.once('close', resolve))
  await waitFor(() => app.wsRouter.connectionCount === 1)

  const started = Date.now()
  let failure: unknown
  await app.close().catch((err: unknown) => { failure = err })
  const elapsed = Date.now() - started
  t.equal(failure, undefined, `app.close() resolved (${(failure as Error | undefined)?.message ?? 'no error'})`)
  t.ok(elapsed <= BOUND, `within shutdownGraceMs + 1 s (${elapsed} ms, bound ${BOUND} ms)`)
  t.equal(await closed, 1001, 'the injected client saw 1001')
})
