// Issue 10 §3: with the DEFAULT options (shutdownGraceMs 10 s, Fastify's
// pluginTimeout 10 s), app.close() resolves within shutdownGraceMs + 1 s
// whatever the peers do, and never rejects because of the router's drain.
import t, { type Test } from 'tap'
import type net from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { wsRouter, environmentPresets } from '../lib/index.js'
import { logSink } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'
import { stalledPeer } from './helpers/stalled-peer.js'

const GRACE = environmentPresets.test.shutdownGraceMs
const BOUND = GRACE + 1000

/** app.close(), timed: it must resolve, within shutdownGraceMs + 1 s. */
async function closeWithinBound (t: Test, app: FastifyInstance): Promise<void> {
  const started = Date.now()
  let failure: unknown
  await app.close().catch((err: unknown) => { failure = err })
  const elapsed = Date.now() - started
  t.equal(failure, undefined, `app.close() resolved (${(failure as Error | undefined)?.message ?? 'no error'})`)
  t.ok(elapsed <= BOUND, `within shutdownGraceMs + 1 s (${elapsed} ms, bound ${BOUND} ms)`)
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

  await closeWithinBound(t, app)
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

  await closeWithinBound(t, app)
  t.equal(await closed, 1001, 'the injected client saw 1001')
})
