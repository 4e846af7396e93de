/**
 * The per-frame pieces of the plugin beside those of the hand-written
 * router, each in isolation (no sockets): parse, validate, serialise, and the
 * promise chain a reply goes through. Companion of the CPU profiles in
 * docs/performance.md; not part of `npm run bench`.
 *
 *   npx tsx bench/frame-path.ts
 *
 * Each line is the median of 7 batches, in nanoseconds per frame. Run it
 * pinned (`taskset -c 1 npx tsx bench/frame-path.ts`) on a quiet machine.
 */
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import sjson from 'secure-json-parse'
import { decodeFrame, encodeFrame } from '../lib/envelope.js'
import { payloadJson } from './harness/config.js'
import { spread } from './harness/stats.js'

const BATCHES = 7
const UserMessage = TypeCompiler.Compile(Type.Object({ room: Type.String(), text: Type.String() }))

let sink: unknown

function measure (name: string, iterations: number, body: (i: number) => unknown): void {
  for (let i = 0; i < iterations; i++) sink = body(i) // warm-up and JIT
  const perOp: number[] = []
  for (let batch = 0; batch < BATCHES; batch++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) sink = body(i)
    perOp.push(Number(process.hrtime.bigint() - start) / iterations)
  }
  const s = spread(perOp)
  console.log(`${name.padEnd(62)} ${s.median.toFixed(0).padStart(7)} ns  (${s.min.toFixed(0)}–${s.max.toFixed(0)})`)
}

/**
 * Chains started `perTurn` at a time (as the frames of one socket read),
 * timed until the last of each turn settles.
 */
async function measureChains (name: string, turns: number, perTurn: number, start: (done: () => void) => void): Promise<void> {
  const perOp: number[] = []
  const turn = (): Promise<void> => new Promise<void>((resolve) => {
    let left = perTurn
    const done = (): void => { if (--left === 0) resolve() }
    for (let i = 0; i < perTurn; i++) start(done)
  })
  for (let batch = 0; batch <= BATCHES; batch++) {
    const begin = process.hrtime.bigint()
    for (let t = 0; t < turns; t++) await turn()
    if (batch > 0) perOp.push(Number(process.hrtime.bigint() - begin) / (turns * perTurn))
  }
  const s = spread(perOp)
  console.log(`${name.padEnd(62)} ${s.median.toFixed(0).padStart(7)} ns  (${s.min.toFixed(0)}–${s.max.toFixed(0)})`)
}

for (const bytes of [64, 4096]) {
  const payload = payloadJson(bytes)
  // Flat strings, as `buffer.toString()` gives the server (a concatenated
  // string would make every charCodeAt() walk a rope).
  const pingFrame = Buffer.from(`{"type":"ping","id":12345,"payload":${payload}}`).toString()
  const messageFrame = Buffer.from(`{"type":"user_message","id":12345,"payload":${payload}}`).toString()
  const parsed = JSON.parse(messageFrame) as { payload: { room: string, text: string } }
  const n = bytes > 1000 ? 20_000 : 200_000
  console.log(`\n== frame of ${pingFrame.length} bytes (payload ${bytes} B) ==`)
  console.log('parse')
  measure('  JSON.parse (hand-written router)', n, () => JSON.parse(pingFrame))
  measure('  secure-json-parse safeParse (JSON.parse + 2 regex scans; no longer used by lib/)', n, () => sjson.safeParse(pingFrame))
  measure('  decodeFrame, lib/envelope.ts (JSON.parse + one walk by value: keys, depth, numbers)', n, () => decodeFrame(pingFrame, 32))
  measure('  depth scan alone (loop over every char, as mayExceedDepth)', n, () => {
    let open = 0
    for (let i = 0; i < pingFrame.length; i++) {
      const c = pingFrame.charCodeAt(i)
      if ((c === 123 || c === 91) && ++open > 32) return true
    }
    return false
  })
  measure('  number regex alone (/\\d[eE]|\\d{309}/)', n, () => /\d[eE]|\d{309}/.test(pingFrame))
  console.log('validate user_message payload')
  measure('  typeof checks (hand-written router)', n, () => typeof parsed.payload.room === 'string' && typeof parsed.payload.text === 'string')
  measure('  TypeBox compiled Check', n, () => UserMessage.Check(parsed.payload))
  console.log('serialise the pong')
  measure('  JSON.stringify of {type,id,payload,timestamp} (hand-written)', n, (i) => JSON.stringify({ type: 'pong', id: i, payload: { serverTime: Date.now() }, timestamp: Date.now() }))
  measure('  encodeFrame, lib/envelope.ts (same + result object)', n, (i) => encodeFrame('pong', i, { serverTime: Date.now() }))
}

console.log('\n== what a reply costs after socket.send() (no I/O; the write callback simulated by a microtask) ==')
const SENT = Object.freeze({ ok: true })
await measureChains('  hand-written: nothing (send without callback)', 10_000, 16, (done) => done())
await measureChains('  plugin: new Promise(write cb) → .then (sendFrame) → .then (complete)', 10_000, 16, (done) => {
  const written = new Promise<typeof SENT>((resolve) => { queueMicrotask(() => resolve(SENT)) })
  written.then((result) => result).then(done)
})
console.log(`\n(result kept: ${typeof sink})`)
