/**
 * Server of bench/metrics.ts: the plugin with one observability mode
 * (argv[2]) on a spare port; it prints the port, then answers each `cpu`
 * line on stdin with its process CPU time in microseconds.
 *
 * Modes: `off`; `metrics` (prom-client, own registry); `tracing` (the
 * option on, no SDK registered); `tracing-sdk` (the option on, the Node SDK
 * registered with a BatchSpanProcessor whose exporter discards: the cost of
 * recording spans, without the network).
 */
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import { Registry } from 'prom-client'
import { BatchSpanProcessor, NodeTracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-node'
import { wsRouter, type WsRouterOptions } from '../../lib/index.js'

const mode = process.argv[2] ?? 'off'
const modes: Record<string, () => WsRouterOptions> = {
  off: () => ({}),
  on: () => ({ metrics: { registry: new Registry() } }),
  metrics: () => ({ metrics: { registry: new Registry() } }),
  tracing: () => ({ tracing: true }),
  'tracing-sdk': () => {
    const discard: SpanExporter = {
      export (_spans: ReadableSpan[], done) { done({ code: 0 }) },
      async shutdown () {}
    }
    new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(discard)] }).register()
    return { tracing: true }
  }
}
const options = modes[mode]
if (options === undefined) throw new Error(`unknown mode ${mode}: one of ${Object.keys(modes).join(', ')}`)
const app = Fastify({ logger: false })
await app.register(wsRouter, {
  environment: 'test',
  rateLimit: false,
  maxConnectionsPerUser: 0,
  ...options()
})
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('no port')
console.log(JSON.stringify({ port: address.port }))
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'cpu') {
    const usage = process.cpuUsage()
    console.log(JSON.stringify({ cpuMicros: usage.user + usage.system }))
  } else if (line === 'exit') {
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
})
