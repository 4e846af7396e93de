import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { Registry } from 'prom-client'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { mustRunPrometheusTests, prometheusUnavailableReason, startPrometheus, type TestPrometheus } from './helpers/prometheus.js'

const run = promisify(execFile)
const unavailable = prometheusUnavailableReason()
if (unavailable !== undefined && mustRunPrometheusTests()) {
  t.fail(`Prometheus is required here (WSR_REQUIRE_PROMETHEUS=1): ${unavailable}`)
}

/** The first sample of a query once it equals `expected` (Prometheus scrapes every second). */
async function eventually (prometheus: TestPrometheus, promql: string, expected: number, timeoutMs = 20_000): Promise<number | undefined> {
  const deadline = Date.now() + timeoutMs
  let last: number | undefined
  while (Date.now() < deadline) {
    const result = await prometheus.query(promql)
    last = result[0]?.value
    if (last === expected) return last
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  return last
}

t.test('the shipped alert rules pass promtool', { skip: unavailable }, async (t) => {
  const { stdout } = await run('promtool', ['check', 'rules', 'docs/alerts.yml'])
  t.match(stdout, /SUCCESS: 4 rules found/)
})

t.test('the PromQL examples of docs/observability.md parse (promtool, as recording rules)', { skip: unavailable }, async (t) => {
  const doc = readFileSync('docs/observability.md', 'utf8')
  const block = /```promql\n([\s\S]*?)```/.exec(doc)?.[1] ?? ''
  const examples = block.split(/\n(?:#[^\n]*\n)+|\n\n/).map((e) => e.replace(/^#.*$/gm, '').trim().replace(/\s*\n\s*/g, ' ')).filter((e) => e !== '')
  t.ok(examples.length >= 5, `${examples.length} examples found`)
  const dir = mkdtempSync(join(tmpdir(), 'wsr-promql-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'examples.yml')
  const rules = examples.map((expr, i) => `      - record: docs:example${i}\n        expr: ${JSON.stringify(expr)}`)
  writeFileSync(file, `groups:\n  - name: docs\n    rules:\n${rules.join('\n')}\n`)
  const { stdout } = await run('promtool', ['check', 'rules', file])
  t.match(stdout, new RegExp(`SUCCESS: ${examples.length} rules found`))
})

t.test('a real Prometheus scrapes what the test did', { skip: unavailable }, async (t) => {
  const registry = new Registry()
  const server = await startServer({ metrics: { registry }, rateLimit: false, maxConsecutiveErrors: 100, maxOutboundBytes: 1024 }, (app) => {
    app.wsRouter.on('boom', () => { throw new Error('kaput') })
    app.wsRouter.on('big', () => ({ text: 'x'.repeat(2000) }))
    app.wsRouter.on('ok', () => ({ fine: true }))
  })
  t.teardown(() => server.close())
  const target = new URL(server.url).host
  const prometheus = await startPrometheus([target])
  t.teardown(() => prometheus.close())

  const clients = await Promise.all([connect(server.url), connect(server.url), connect(server.url)])
  for (const client of clients) await client.next('connection_established')
  const [a, b, c] = clients as [typeof clients[0], typeof clients[0], typeof clients[0]]
  for (let i = 0; i < 4; i++) a.send({ type: 'boom', id: `b${i}` })
  for (let i = 0; i < 3; i++) a.send({ type: 'ok', id: `o${i}` })
  b.sendRaw('{oops')
  b.sendRaw('{oops')
  a.send({ type: 'big', id: 'g1' })
  a.send({ type: 'big', id: 'g2' })
  await a.next((f) => f.id === 'o2')
  await a.next((f) => f.id === 'g2' && f.type === 'error')
  await b.next((f) => f.type === 'error' && f.payload?.code === 'INVALID_JSON')
  await b.next((f) => f.type === 'error' && f.payload?.code === 'INVALID_JSON' && b.frames.filter((x) => x.type === 'error').length === 2)
  c.close()
  await c.closed
  t.equal(server.app.wsRouter.getStats().connections.open, 2)

  t.equal(await eventually(prometheus, 'wsr_connections_open{job="wsr-test",route="/ws"}', 2), 2, 'the gauge reads the open connections')
  t.equal(await eventually(prometheus, 'wsr_connections_opened_total{job="wsr-test"}', 3), 3)
  t.equal(await eventually(prometheus, 'sum(wsr_connections_closed_total{job="wsr-test"})', 1), 1)
  t.equal(await eventually(prometheus, 'wsr_messages_total{type="boom",outcome="failed"}', 4), 4, 'failed messages by type')
  t.equal(await eventually(prometheus, 'wsr_messages_total{type="ok",outcome="handled"}', 3), 3)
  t.equal(await eventually(prometheus, 'wsr_handler_failures_total{kind="error"}', 4), 4)
  t.equal(await eventually(prometheus, 'wsr_frames_invalid_total{code="INVALID_JSON"}', 2), 2)
  t.equal(await eventually(prometheus, 'wsr_handler_duration_seconds_count{type="ok"}', 3), 3)
  t.equal(await eventually(prometheus, 'wsr_send_failures_total{reason="TOO_LARGE"}', 2), 2, 'send failures by reason: two replies over maxOutboundBytes')
  t.equal(await eventually(prometheus, 'up{job="wsr-test"}', 1), 1)
  const p99 = await prometheus.query('histogram_quantile(0.99, sum by (le) (wsr_handler_duration_seconds_bucket{type="ok"}))')
  t.ok(Number.isFinite(p99[0]?.value) && (p99[0]?.value ?? 1) < 0.5, `Prometheus reads the handler histogram (p99 ${p99[0]?.value} s)`)
})
