/**
 * Per-frame server cost of a served frame beside a rate-limited one (issue 9:
 * shedding load must cost less than serving). The whole inbound path of the
 * router runs, from the socket's `message` event to the frame written, on a
 * stub socket that takes every write at once (no network, no client), so the
 * figure is the router's own CPU per frame. Not part of `npm run bench`.
 *
 *   npx tsx bench/shed.ts
 *
 * Each line is the median of 7 batches, in nanoseconds per frame (min–max in
 * brackets), microtasks of the batch included. Run it pinned
 * (`taskset -c 1 npx tsx bench/shed.ts`) on a quiet machine.
 */
import { EventEmitter } from 'node:events'
import Fastify, { type FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { buildConfig } from '../lib/options.js'
import { WsRouter } from '../lib/router.js'
import { registerPing } from '../lib/handlers/ping.js'
import { payloadJson } from './harness/config.js'
import { spread } from './harness/stats.js'
import { kEngine } from '../lib/symbols.js'

const BATCHES = 7

/** Just enough of a ws WebSocket: open, nothing buffered, every write done at once. */
class StubSocket extends EventEmitter {
  readyState = 1
  bufferedAmount = 0
  readonly OPEN = 1
  written = 0
  last = ''
  send (text: string, cb?: (err?: Error) => void): void {
    this.last = text
    this.written++
    cb?.()
  }

  close (): void {}
  terminate (): void {}
  pause (): void {}
  resume (): void {}
  ping (): void {}
}

const log = Fastify({ logger: { level: 'silent' } }).log
const router = new WsRouter(buildConfig({ environment: 'production', allowAnonymous: true }), log)
// The plugin registers `ping` (plugins/router.ts); without it every "served"
// frame was an UNKNOWN_TYPE error frame.
registerPing(router[kEngine].builtins)
router[kEngine].lock()
const socket = new StubSocket()
const request = { log } as unknown as FastifyRequest
const conn = router[kEngine].accept(socket as unknown as WebSocket, request, { userId: 'bench' })
const onMessage = socket.listeners('message')[0] as (this: StubSocket, data: Buffer, isBinary: boolean) => void

async function measure (name: string, iterations: number, frame: Buffer, limited: boolean): Promise<number> {
  const run = async (): Promise<void> => {
    for (let i = 0; i < iterations; i++) {
      // Steady state of each case: tokens to spare, or none left (and not the
      // first refusal of the abuse window, which alone is logged).
      conn.tokens = limited ? 0 : 1000
      conn.refusedInWindow = 1
      onMessage.call(socket, frame, false)
    }
    await new Promise((resolve) => setImmediate(resolve))
  }
  await run() // warm-up and JIT
  const perOp: number[] = []
  for (let batch = 0; batch < BATCHES; batch++) {
    const start = process.hrtime.bigint()
    await run()
    perOp.push(Number(process.hrtime.bigint() - start) / iterations)
  }
  const s = spread(perOp)
  console.log(`${name.padEnd(44)} ${s.median.toFixed(0).padStart(7)} ns  (${s.min.toFixed(0)}–${s.max.toFixed(0)})`)
  return s.median
}

for (const bytes of [64, 4096]) {
  const frame = Buffer.from(`{"type":"ping","id":12345,"payload":${payloadJson(bytes)}}`)
  const n = bytes > 1000 ? 20_000 : 100_000
  console.log(`\n== ping frame of ${frame.length} bytes (payload ${bytes} B), production preset ==`)
  const served = await measure('  served (pong written)', n, frame, false)
  if (!socket.last.startsWith('{"type":"pong"')) throw new Error(`served frames were answered ${socket.last.slice(0, 80)}`)
  const refused = await measure('  rate-limited (RATE_LIMITED written)', n, frame, true)
  console.log(`  rate-limited / served: ${(refused / served).toFixed(2)}`)
}
const stats = router.getStats()
console.log(`\nframes ${stats.frames.received}, rateLimited ${stats.rateLimited}, writes ${socket.written}`)
