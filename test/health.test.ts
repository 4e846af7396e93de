import t from 'tap'
import { RedisAdapter } from '../lib/redis.js'
import { liveness, readiness } from '../lib/health.js'
import { startServer, type TestServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { eventually } from './helpers/wait.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis } from './helpers/redis.js'
import { engineOf } from './helpers/internals.js'

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) {
  t.fail(`Redis is required here (WSR_REQUIRE_REDIS=1): ${unavailable}`)
}

async function get (server: TestServer, path: string): Promise<{ status: number, body: { status: string, reasons: string[], connections: number } }> {
  const response = await fetch(server.url.replace('ws://', 'http://').replace(/\/ws$/, path))
  return { status: response.status, body: await response.json() as never }
}

t.test('unit: readiness names every reason; liveness is ok', async (t) => {
  t.same(liveness(3), { statusCode: 200, body: { status: 'ok', reasons: [], connections: 3 } })
  t.equal(readiness({ closing: false, connections: 0, broker: null }).statusCode, 200)
  t.equal(readiness({ closing: false, connections: 0, broker: { connected: false, requireBroker: false } }).statusCode, 200, 'a degraded broker without requireBroker keeps serving')
  const both = readiness({ closing: true, connections: 2, broker: { connected: false, requireBroker: true } })
  t.equal(both.statusCode, 503)
  t.same(both.body.reasons, ['shutting down: new upgrades are refused', 'broker down and requireBroker is set'])
})

t.test('health: true serves both routes; readiness goes 503 with its reason when shutdown starts', async (t) => {
  const server = await startServer({ health: true })
  t.teardown(() => server.close())
  const client = await connect(server.url)
  await client.next('connection_established')
  const live = await get(server, '/health/live')
  t.equal(live.status, 200)
  t.same(live.body, { status: 'ok', reasons: [], connections: 1 })
  const ready = await get(server, '/health/ready')
  t.equal(ready.status, 200)
  t.same(ready.body.reasons, [])
  // The router's shutdown (what app.close() runs in preClose) has begun.
  const closing = engineOf(server.app.wsRouter).close()
  const during = await get(server, '/health/ready')
  t.equal(during.status, 503)
  t.same(during.body.reasons, ['shutting down: new upgrades are refused'])
  t.equal((await get(server, '/health/live')).status, 200, 'still alive while draining')
  await closing
})

t.test('custom paths, and false for none', async (t) => {
  const server = await startServer({ health: { livenessPath: '/livez', readinessPath: false } })
  t.teardown(() => server.close())
  t.equal((await get(server, '/livez')).status, 200)
  const response = await fetch(server.url.replace('ws://', 'http://').replace(/\/ws$/, '/health/ready'))
  t.equal(response.status, 404)
})

t.test('requireBroker: readiness follows the broker', { skip: unavailable }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const server = await startServer({ health: true, adapter: new RedisAdapter({ redis: redis.url, requireBroker: true, connectTimeoutMs: 3000 }) })
  t.teardown(() => server.close())
  t.equal((await get(server, '/health/ready')).status, 200)
  await redis.stop()
  await t.resolves(eventually(async () => (await get(server, '/health/ready')).status === 503))
  t.same((await get(server, '/health/ready')).body.reasons, ['broker down and requireBroker is set'])
  t.equal((await get(server, '/health/live')).status, 200, 'a broker outage is no reason to restart the process')
  await redis.start()
  await t.resolves(eventually(async () => (await get(server, '/health/ready')).status === 200))
})
