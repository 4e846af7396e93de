import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { Registry, register as globalRegister } from 'prom-client'
import { startServer, type TestServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { eventually } from './helpers/wait.js'
import { untrackedNode } from './helpers/child-env.js'

const run = promisify(execFile)

interface Sample { name: string, labels: Record<string, string>, value: number }

/** The text exposition, parsed into samples (comments skipped). */
function parse (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`unparsed line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] as string] = pair[2] as string
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) })
  }
  return samples
}

function value (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  return found?.value
}

async function scrape (server: TestServer, path = '/metrics'): Promise<Sample[]> {
  const response = await fetch(server.url.replace('ws://', 'http://').replace(/\/ws$/, path))
  if (response.status !== 200) throw new Error(`scrape answered ${response.status}`)
  const type = response.headers.get('content-type') ?? ''
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`not the Prometheus text format: ${type}`)
  return parse(await response.text())
}

t.test('prom-client is loaded only when metrics is set', async (t) => {
  const node = (mode: string) => untrackedNode(['--import', 'tsx', 'test/fixtures/metrics-loading.ts', mode])
  const off = node('off')
  const on = node('on')
  const outOff = JSON.parse((await run(off.command, off.args, { env: off.env })).stdout)
  const outOn = JSON.parse((await run(on.command, on.args, { env: on.env })).stdout)
  t.same(outOff, { withMetrics: false, loaded: false })
  t.same(outOn, { withMetrics: true, loaded: true })
})

t.test('counters read what the traffic did, and agree with getStats()', async (t) => {
  const registry = new Registry()
  const server = await startServer({ metrics: { registry }, rateLimit: false }, (app) => {
    app.wsRouter.on('work', async () => {
      await new Promise((resolve) => setTimeout(resolve, 30))
      return { done: true }
    })
    app.wsRouter.on('boom', () => { throw new Error('kaput') })
    app.wsRouter.on('shout', async (_payload, ctx) => {
      app.wsRouter.join(ctx.connectionId, 'hall')
      await app.wsRouter.sendToRoom('hall', 'shouted', {})
    })
  })
  t.teardown(() => server.close())
  const client = await connect(server.url)
  await client.next('connection_established')
  // Pipelined: every frame has its answer, and the metrics count each once.
  client.send({ type: 'work', id: 'w1' })
  client.send({ type: 'boom', id: 'b1' })
  client.sendRaw('{not json')
  client.send({ type: 'shout', id: 's1' })
  await client.next((f) => f.id === 'w1')
  await client.next((f) => f.id === 'b1')
  await client.next((f) => f.type === 'error' && f.payload?.code === 'INVALID_JSON')
  await client.next((f) => f.id === 's1')

  const samples = await scrape(server)
  const stats = server.app.wsRouter.getStats()
  const route = { route: '/ws' }
  t.equal(value(samples, 'wsr_connections_open', route), 1)
  t.equal(value(samples, 'wsr_connections_opened_total', route), 1)
  t.equal(value(samples, 'wsr_messages_total', { type: 'work', outcome: 'handled' }), 1)
  t.equal(value(samples, 'wsr_messages_total', { type: 'boom', outcome: 'failed' }), 1)
  t.equal(value(samples, 'wsr_frames_invalid_total', { code: 'INVALID_JSON' }), 1)
  t.equal(value(samples, 'wsr_handler_failures_total', { kind: 'error' }), 1)
  t.equal(value(samples, 'wsr_frames_received_total', route), stats.frames.received)
  t.equal(value(samples, 'wsr_sends_total', route), stats.sends.ok)
  t.equal(value(samples, 'wsr_handler_duration_seconds_count', { type: 'work' }), 1)
  t.ok((value(samples, 'wsr_handler_duration_seconds_sum', { type: 'work' }) ?? 0) >= 0.025, 'the handler\'s 30 ms are in its duration')
  const buckets = samples.filter((s) => s.name === 'wsr_handler_duration_seconds_bucket' && s.labels.type === 'work')
  t.equal(buckets.at(-1)?.labels.le, '+Inf')
  t.equal(buckets.at(-1)?.value, 1)
  t.same(buckets.map((b) => b.value), [...buckets.map((b) => b.value)].sort((a, b) => a - b), 'buckets are cumulative')
  t.equal(buckets.find((b) => b.labels.le === '0.025')?.value, 0, 'a 30 ms handler is not in the 25 ms bucket')
  t.equal(value(samples, 'wsr_fanout_targets_count', route), 1)
  t.equal(value(samples, 'wsr_fanout_targets_sum', route), 1, 'one member in the room')
  t.equal(value(samples, 'wsr_broker_up', route), undefined, 'no broker series for the in-memory adapter')

  client.close()
  await client.closed
  await t.resolves(eventually(async () => value(await scrape(server), 'wsr_connections_open', route) === 0))
  const after = await scrape(server)
  t.equal(value(after, 'wsr_connections_closed_total', { code: '1005' }), 1, 'closed by the client without a code (1005)')
})

t.test('the type label takes registered types and "other" only, whatever clients send', async (t) => {
  const registry = new Registry()
  const server = await startServer({ metrics: { registry }, rateLimit: false, unknownType: 'ack' })
  t.teardown(() => server.close())
  const client = await connect(server.url)
  await client.next('connection_established')
  const count = 10_000
  for (let i = 0; i < count; i++) client.send({ type: `t${Math.random().toString(36).slice(2)}`, id: i })
  await client.next((f) => f.id === count - 1, 60_000)
  const samples = await scrape(server)
  const registered = new Set(Object.keys(server.app.wsRouter.getStats().types))
  const typeValues = new Set(samples.filter((s) => s.labels.type !== undefined).map((s) => s.labels.type as string))
  const strays = [...typeValues].filter((type) => type !== 'other' && !registered.has(type))
  t.same(strays, [], 'no client-chosen type became a label value')
  t.ok(typeValues.size <= registered.size + 1)
  t.equal(value(samples, 'wsr_messages_total', { type: 'other', outcome: 'unhandled' }), count)
  t.ok(samples.length < 500, `bounded series count (${samples.length})`)
})

t.test('metrics: true uses the global registry and serves /metrics; closing the app takes the metrics off it', async (t) => {
  const server = await startServer({ metrics: true })
  const samples = await scrape(server)
  t.equal(value(samples, 'wsr_connections_open', { route: '/ws' }), 0)
  t.ok(globalRegister.getSingleMetric('wsr_connections_open') !== undefined)
  await server.close()
  t.equal(globalRegister.getSingleMetric('wsr_connections_open'), undefined)
})

t.test('a custom prefix and path; path false serves nothing', async (t) => {
  const registry = new Registry()
  const server = await startServer({ metrics: { registry, prefix: 'chat_', path: '/internal/metrics' } })
  t.teardown(() => server.close())
  const samples = await scrape(server, '/internal/metrics')
  t.equal(value(samples, 'chat_connections_open'), 0)
  const none = await startServer({ metrics: { registry: new Registry(), path: false } })
  t.teardown(() => none.close())
  const response = await fetch(none.url.replace('ws://', 'http://').replace(/\/ws$/, '/metrics'))
  t.equal(response.status, 404)
})

t.test('metrics options are checked at registration', async (t) => {
  await t.rejects(startServer({ metrics: { prefix: 'bad-prefix' } }), { code: 'FST_WSR_INVALID_OPTION' })
  await t.rejects(startServer({ metrics: { port: 9 } as never }), { code: 'FST_WSR_INVALID_OPTION' })
})

t.test('resume metrics (issue 12): parked, resumed, replayed, refused by reason; absent with resume off', async (t) => {
  const registry = new Registry()
  const server = await startServer({ metrics: { registry }, resume: true })
  t.teardown(() => server.close())
  const router = server.app.wsRouter
  const first = await connect(`${server.url}?user=alice`)
  const hello = await first.next('connection_established')
  const { connectionId } = hello.payload
  const token = hello.payload.resume.token as string
  await router.sendTo(connectionId, 'news', { n: 1 })
  const news = await first.next('news')
  first.ws.terminate()
  await eventually(async () => value(await scrape(server), 'wsr_resume_sessions_parked', { route: '/ws' }) === 1, 5000, 'the gauge to show the dropped session parked')
  await router.sendTo(connectionId, 'news', { n: 2 })
  await router.sendTo(connectionId, 'news', { n: 3 })
  const back = await connect(`${server.url}?user=alice&resume=${encodeURIComponent(token)}&lastSeq=${(news as unknown as { seq: number }).seq}`)
  t.teardown(() => back.close())
  await back.next('resumed')
  const stranger = await connect(`${server.url}?user=bob&resume=${encodeURIComponent(`${connectionId}.forged`)}&lastSeq=0`)
  t.teardown(() => stranger.close())
  await stranger.next('resume_failed')
  const samples = await scrape(server)
  const stats = router.getStats().resume
  t.equal(value(samples, 'wsr_resume_resumed_total', { route: '/ws' }), 1)
  t.equal(value(samples, 'wsr_resume_replayed_events_total', { route: '/ws' }), 2, 'the two missed events')
  t.equal(value(samples, 'wsr_resume_failed_total', { route: '/ws', reason: 'unknown' }), 1, 'a forged token is refused as unknown')
  t.equal(value(samples, 'wsr_resume_sessions_parked', { route: '/ws' }), 0)
  t.equal(value(samples, 'wsr_resume_sessions', { route: '/ws' }), stats?.sessions, 'the gauge reads getStats().resume')
  t.equal(value(samples, 'wsr_resume_gaps_total', { route: '/ws' }), 0)

  const plainRegistry = new Registry()
  const plain = await startServer({ metrics: { registry: plainRegistry } })
  t.teardown(() => plain.close())
  t.equal(value(await scrape(plain), 'wsr_resume_resumed_total', { route: '/ws' }), undefined, 'no resume series with resume off')
})
