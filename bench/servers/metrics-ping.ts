/**
 * Server of bench/metrics.ts: the plugin with `metrics` on or off
 * (argv[2]), on a spare port; it prints the port, then answers each `cpu`
 * line on stdin with its process CPU time in microseconds.
 */
import Fastify from 'fastify'
import { createInterface } from 'node:readline'
import { Registry } from 'prom-client'
import { wsRouter } from '../../lib/index.js'

const withMetrics = process.argv[2] === 'on'
const app = Fastify({ logger: false })
await app.register(wsRouter, {
  environment: 'test',
  rateLimit: false,
  maxConnectionsPerUser: 0,
  ...(withMetrics ? { metrics: { registry: new Registry() } } : {})
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
