import t from 'tap'
import WebSocket from 'ws'
import { startServer } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

/**
 * 5 000 connect / message / close cycles, half of them abrupt. The bound on
 * heap growth is generous on purpose (a test, not a benchmark): the precise
 * figure comes from `npm run bench`.
 */
t.test('churn: registries, rooms and timers back to zero; heap growth bounded', { timeout: 180_000 }, async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc
  const server = await startServer({ maxConnectionsPerUser: 0, maxConnections: 0, rateLimit: false })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const cycles = 5000
  const concurrency = 25

  async function cycle (i: number): Promise<void> {
    const ws = new WebSocket(`${server.url}?user=u${i % 100}`)
    await new Promise<void>((resolve, reject) => {
      ws.once('error', reject)
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString())
        if (frame.type === 'connection_established') {
          ws.send(JSON.stringify({ type: 'join', id: 'j', payload: { room: `room-${i % 10}` } }))
        } else if (frame.type === 'joined') {
          if (i % 2 === 0) ws.terminate()
          else ws.close()
          resolve()
        }
      })
    })
    await new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) resolve()
      else ws.once('close', () => resolve())
    })
  }

  async function run (from: number, to: number): Promise<void> {
    let next = from
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (next < to) await cycle(next++)
    }))
    await waitFor(() => router.connectionCount === 0, 10_000, 'every connection released')
  }

  await run(0, 500) // warm-up: code paths compiled, pools allocated
  // The test's log sink keeps every line (two request lines per upgrade):
  // count them, then drop them so the heap figure is the router's.
  const requestLogLines = (): number => server.logs.splice(0).length
  requestLogLines()
  gc?.()
  const before = process.memoryUsage().heapUsed
  await run(500, cycles)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const logged = requestLogLines()
  gc?.()
  const after = process.memoryUsage().heapUsed
  const stats = router.getStats()
  t.equal(router.connectionCount, 0, 'no connection left')
  t.equal(stats.connections.open, 0)
  t.equal(stats.connections.total, cycles)
  t.equal(stats.rooms, 0, 'no room left')
  t.equal(stats.users, 0, 'no user left')
  t.equal(engineOf(router).admissions.size, 0, 'no admission left')
  t.equal(engineOf(router).sweeper.size, 0, 'no handler deadline left')
  t.equal(stats.types.join?.handled, cycles)
  t.ok(logged <= 2 * (cycles - 500), `only request lines were logged (${logged}), no failure lines`)
  const growthMiB = (after - before) / 1024 / 1024
  t.comment(`heap growth after GC: ${growthMiB.toFixed(2)} MiB (gc ${gc === undefined ? 'unavailable' : 'forced'})`)
  t.ok(growthMiB < 5, `heap growth ${growthMiB.toFixed(2)} MiB < 5 MiB`)
})
