import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { wsRouter } from '../lib/index.js'
import { createClient, type Client } from '../lib/client/index.js'
import { waitFor } from './helpers/wait.js'

/**
 * A server restart under 200 clients with the client's default backoff:
 * every client comes back, and the reconnects are spread over time rather
 * than arriving in one burst. The figures are printed for docs/client.md.
 */
const CLIENTS = 200

async function serverOn (port: number, upgrades: number[]): Promise<FastifyInstance> {
  const app = Fastify()
  app.addHook('onRequest', async (request) => {
    if (request.headers.upgrade === 'websocket') upgrades.push(performance.now())
  })
  await app.register(wsRouter, { environment: 'test' })
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

t.test(`a server restart under ${CLIENTS} clients: all reconnect, spread by the jitter`, async (t) => {
  const firstUpgrades: number[] = []
  const first = await serverOn(0, firstUpgrades)
  const address = first.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const port = address.port
  const clients: Client[] = []
  t.teardown(() => { for (const client of clients) client.close() })
  for (let i = 0; i < CLIENTS; i++) clients.push(createClient({ url: `ws://127.0.0.1:${port}/ws?user=u${i}`, WebSocket }))
  await waitFor(() => clients.every((c) => c.state === 'open'), 30_000, 'every client open')
  const firstIds = new Set(clients.map((c) => c.connectionId))

  const firstDelays: number[] = []
  for (const client of clients) {
    const off = client.on('state', (state, info) => {
      if (state !== 'reconnecting') return
      firstDelays.push(info.delayMs ?? -1)
      off()
    })
  }
  const upgrades: number[] = []
  const restartedAt = performance.now()
  await first.close()
  const second = await serverOn(port, upgrades)
  t.teardown(() => second.close())
  const listeningAfterMs = performance.now() - restartedAt
  await waitFor(() => clients.every((c) => c.state === 'open' && !firstIds.has(c.connectionId)), 60_000, 'every client back')

  t.equal(second.wsRouter.connectionCount, CLIENTS, 'all clients reconnected')
  const offsets = upgrades.map((at) => at - restartedAt).sort((a, b) => a - b)
  const spanMs = (offsets.at(-1) ?? 0) - (offsets[0] ?? 0)
  let peak100 = 0
  let peak1000 = 0
  for (let i = 0, j100 = 0, j1000 = 0; i < offsets.length; i++) {
    const at = offsets[i] ?? 0
    while ((offsets[j100] ?? 0) < at - 100) j100++
    while ((offsets[j1000] ?? 0) < at - 1000) j1000++
    peak100 = Math.max(peak100, i - j100 + 1)
    peak1000 = Math.max(peak1000, i - j1000 + 1)
  }
  t.comment(`restart storm: ${CLIENTS} clients, ${upgrades.length} upgrade requests on the new server (listening ${listeningAfterMs.toFixed(0)} ms after close began), ` +
    `first ${offsets[0]?.toFixed(0)} ms, last ${offsets.at(-1)?.toFixed(0)} ms, spread ${spanMs.toFixed(0)} ms, ` +
    `peak ${peak100} per 100 ms, peak ${peak1000} per second, mean ${(upgrades.length / (spanMs / 1000)).toFixed(0)} per second`)
  // The arrival times above also carry this process's event-loop stalls
  // (server and 200 clients share it), so the jitter itself is checked on
  // the delays the clients chose: full jitter over the first 500 ms puts
  // about 40 in each 100 ms, a storm would put all 200 in one.
  t.equal(firstDelays.length, CLIENTS, 'every client scheduled a reconnect')
  t.ok(firstDelays.every((d) => d >= 0 && d < 500), 'first delays within [0, 500) ms')
  const buckets = new Array<number>(5).fill(0)
  for (const d of firstDelays) buckets[Math.floor(d / 100)] = (buckets[Math.floor(d / 100)] ?? 0) + 1
  t.comment(`first reconnect delays per 100 ms: ${buckets.join(', ')}`)
  t.ok(Math.max(...buckets) <= CLIENTS / 2, `no 100 ms holds more than half of the first attempts (${Math.max(...buckets)})`)
  t.ok(spanMs >= 200, `arrivals spread over ${spanMs.toFixed(0)} ms`)
})
