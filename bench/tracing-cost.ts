/**
 * The work the `tracing` option adds to one message, timed alone (the
 * end-to-end ping figures of bench/metrics.ts are dominated by noise on a
 * shared machine): the check made with no SDK registered, and the span of
 * one envelope with the Node SDK registered (BatchSpanProcessor, an exporter
 * that discards), sampled, unsampled, and with a `traceparent` to extract.
 * Median of 7 batches of N calls, nanoseconds per message.
 *
 *   npm run bench:tracing
 *   npm run bench:tracing -- --calls 500000
 */
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { AlwaysOffSampler, BatchSpanProcessor, NodeTracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-node'
import { Tracing, type SpanSink } from '../lib/tracing.js'
import { spread } from './harness/stats.js'

const { values: args } = parseArgs({ options: { calls: { type: 'string', default: '200000' } } })
const CALLS = Number(args.calls)
const BATCHES = 7
// The router loads the API as the plugin does: through require (lib/peer-dependency.ts).
const api = createRequire(import.meta.url)('@opentelemetry/api') as typeof import('@opentelemetry/api')
const conn = { id: 'c0ffee00-0000-4000-8000-000000000000', userId: 'alice' }
const frame = { type: 'ping', id: 1 }
const withParent = { type: 'ping', id: 1, traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }
const settle = (sink: SpanSink): void => { sink.settle(true) }
const config = { tracerProvider: undefined, connectionId: false, userId: false }

function time (label: string, once: () => void): void {
  for (let i = 0; i < CALLS; i++) once() // warm-up
  const perCall: number[] = []
  for (let b = 0; b < BATCHES; b++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < CALLS; i++) once()
    perCall.push(Number(process.hrtime.bigint() - start) / CALLS)
  }
  const s = spread(perCall)
  console.log(`  ${label.padEnd(58)} ${s.median.toFixed(0).padStart(6)} ns  (${s.min.toFixed(0)}–${s.max.toFixed(0)})`)
}

console.log(`tracing work per message, ${BATCHES} batches of ${CALLS}:`)
const unregistered = new Tracing(api, config)
let enabled = 0
time('option on, no SDK registered: enabled()', () => { if (unregistered.enabled()) enabled++ })
if (enabled !== 0) throw new Error('a tracer was found with no SDK registered')

const discard: SpanExporter = { export (_spans: ReadableSpan[], done) { done({ code: 0 }) }, async shutdown () {} }
const provider = new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] })
provider.register()
const registered = new Tracing(api, config)
if (!registered.enabled()) throw new Error('no tracer with the SDK registered')
time('SDK registered, sampled: enabled() + process span', () => { if (registered.enabled()) registered.envelope(conn, 'ping', 1, frame, settle) })
time('SDK registered, sampled, with a traceparent to extract', () => { if (registered.enabled()) registered.envelope(conn, 'ping', 1, withParent, settle) })
const unsampled = new Tracing(api, { ...config, tracerProvider: new NodeTracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new BatchSpanProcessor(discard)] }) })
time('SDK, sampler drops everything: a non-recording span', () => { if (unsampled.enabled()) unsampled.envelope(conn, 'ping', 1, frame, settle) })
await provider.shutdown()
