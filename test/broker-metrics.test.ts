// Issue 13: the broker metrics over a real outage. A redis-server started
// here is stopped and restarted; wsr_broker_up, wsr_broker_outages_total and
// wsr_broker_outage_seconds_total read what happened, and readiness with
// requireBroker is 503 for as long as the broker is down.
import t from 'tap'
import { Registry } from 'prom-client'
import { RedisAdapter } from '../lib/redis.js'
import { startServer, type TestServer } from './helpers/server.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis } from './helpers/redis.js'
import { eventually } from './helpers/wait.js'

const unavailable = redisUnavailableReason()
if (unavailable !== undefined && mustRunRedisTests()) throw new Error(`Redis tests required: ${unavailable}`)

/** One sample of the text exposition (the series of this test's one route). */
async function sample (server: TestServer, name: string): Promise<number | undefined> {
  const text = await (await fetch(httpUrl(server, '/metrics'))).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

function httpUrl (server: TestServer, path: string): string {
  return server.url.replace('ws://', 'http://').replace(/\/ws$/, path)
}

async function ready (server: TestServer): Promise<number> {
  return (await fetch(httpUrl(server, '/health/ready'))).status
}

t.test('broker up, outages and their duration, with readiness, over a real Redis stopped and restarted', { skip: unavailable }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const server = await startServer({
    metrics: { registry: new Registry() },
    health: true,
    adapter: new RedisAdapter({ redis: redis.url, requireBroker: true, connectTimeoutMs: 3000 })
  })
  t.teardown(() => server.close())

  t.equal(await sample(server, 'wsr_broker_up'), 1, 'up at start')
  t.equal(await sample(server, 'wsr_broker_outages_total'), 0)
  t.equal(await sample(server, 'wsr_broker_outage_seconds_total'), 0)
  t.equal(await ready(server), 200)

  const stoppedAt = performance.now()
  await redis.stop()
  await t.resolves(eventually(async () => (await sample(server, 'wsr_broker_up')) === 0), 'the gauge goes to 0')
  const seenDownAt = performance.now()
  t.equal(await ready(server), 503, 'not ready while the broker is down (requireBroker)')
  t.equal(await sample(server, 'wsr_broker_outages_total'), 1, 'one outage counted')
  const early = await sample(server, 'wsr_broker_outage_seconds_total') as number
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const later = await sample(server, 'wsr_broker_outage_seconds_total') as number
  t.ok(later - early >= 1.4, `the outage in progress counts: ${early} s, then ${later} s 1.5 s later`)
  t.equal(await ready(server), 503, 'still not ready')
  const lastSeenDownAt = performance.now()

  await redis.start()
  await t.resolves(eventually(async () => (await sample(server, 'wsr_broker_up')) === 1, 15_000), 'the gauge goes back to 1')
  const seenUpAt = performance.now()
  t.equal(await ready(server), 200, 'ready again')
  t.equal(await sample(server, 'wsr_broker_outages_total'), 1, 'still one outage')
  const total = await sample(server, 'wsr_broker_outage_seconds_total') as number
  // Bounds read from outside: at least the time the test saw it down, at most
  // the time from stopping Redis to seeing it back.
  t.ok(total >= (lastSeenDownAt - seenDownAt) / 1000, `outage total ${total} s ≥ the ${((lastSeenDownAt - seenDownAt) / 1000).toFixed(2)} s it was seen down`)
  t.ok(total <= (seenUpAt - stoppedAt) / 1000, `outage total ${total} s ≤ the ${((seenUpAt - stoppedAt) / 1000).toFixed(2)} s from stop to seen up`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await sample(server, 'wsr_broker_outage_seconds_total'), total, 'an ended outage no longer grows')

  // A second outage adds to both counters.
  await redis.stop()
  await t.resolves(eventually(async () => (await sample(server, 'wsr_broker_up')) === 0))
  t.equal(await sample(server, 'wsr_broker_outages_total'), 2, 'two outages counted')
  t.equal(await ready(server), 503)
  await redis.start()
  await t.resolves(eventually(async () => (await sample(server, 'wsr_broker_up')) === 1, 15_000))
  t.ok((await sample(server, 'wsr_broker_outage_seconds_total') as number) > total, 'the second outage adds to the total')
  t.equal(await ready(server), 200)
})
