/**
 * Cost of the `metrics` option on the ping path: server CPU time per reply,
 * metrics off beside metrics on, in the same run. Each server is its own
 * process (bench/servers/metrics-ping.ts); rounds alternate off, on, off, on…
 * and the load is the same each time: `CONNECTIONS` clients, each keeping
 * `WINDOW` pings in flight. In the `on` rounds /metrics is scraped every
 * second, as Prometheus would. Medians with min–max.
 *
 *   npm run bench:metrics            (about a minute)
 *   npm run bench:metrics -- --rounds 7 --seconds 5
 *
 * Pin it for steadier figures: `taskset -c 1 npm run bench:metrics`.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { createInterface, type Interface } from 'node:readline'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { spread } from './harness/stats.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '8' },
    window: { type: 'string', default: '16' }
  }
})
const ROUNDS = Number(args.rounds)
const SECONDS = Number(args.seconds)
const CONNECTIONS = Number(args.connections)
const WINDOW = Number(args.window)

interface Server { child: ChildProcessByStdio<Writable, Readable, null>, lines: Interface, port: number, next: () => Promise<string> }

async function startServer (mode: 'on' | 'off'): Promise<Server> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/servers/metrics-ping.ts', mode], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const queue: string[] = []
  const waiting: Array<(line: string) => void> = []
  lines.on('line', (line) => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(line)
    else queue.push(line)
  })
  const next = async (): Promise<string> => queue.shift() ?? await new Promise<string>((resolve) => waiting.push(resolve))
  const { port } = JSON.parse(await next()) as { port: number }
  return { child, lines, port, next }
}

async function cpuMicros (server: Server): Promise<number> {
  server.child.stdin.write('cpu\n')
  return (JSON.parse(await server.next()) as { cpuMicros: number }).cpuMicros
}

/** One round: pings for SECONDS; server CPU microseconds per reply. */
async function round (server: Server, scrape: boolean): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`)
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return ws
  }))
  let replies = 0
  let running = true
  let id = 0
  for (const ws of sockets) {
    ws.on('message', (data) => {
      if ((data as Buffer).includes('"pong"')) {
        replies++
        if (running) ws.send(`{"type":"ping","id":${id++}}`)
      }
    })
  }
  // Let connection_established and warm-up pass before measuring.
  for (const ws of sockets) for (let i = 0; i < WINDOW; i++) ws.send(`{"type":"ping","id":${id++}}`)
  await new Promise((resolve) => setTimeout(resolve, 300))
  const cpuBefore = await cpuMicros(server)
  const repliesBefore = replies
  const scraper = scrape ? setInterval(() => { fetch(`http://127.0.0.1:${server.port}/metrics`).then((r) => r.text(), () => '').catch(() => {}) }, 1000) : null
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000))
  const cpuAfter = await cpuMicros(server)
  const counted = replies - repliesBefore
  running = false
  if (scraper !== null) clearInterval(scraper)
  for (const ws of sockets) ws.terminate()
  return (cpuAfter - cpuBefore) / counted
}

const off = await startServer('off')
const on = await startServer('on')
const perReply = { off: [] as number[], on: [] as number[] }
for (let r = 0; r < ROUNDS; r++) {
  perReply.off.push(await round(off, false))
  perReply.on.push(await round(on, true))
}
for (const server of [off, on]) server.child.stdin.write('exit\n')
const offS = spread(perReply.off)
const onS = spread(perReply.on)
console.log(`ping path, ${CONNECTIONS} connections × ${WINDOW} in flight, ${ROUNDS} rounds of ${SECONDS} s, server CPU per reply:`)
console.log(`  metrics off  ${offS.median.toFixed(2)} µs  (${offS.min.toFixed(2)}–${offS.max.toFixed(2)})`)
console.log(`  metrics on   ${onS.median.toFixed(2)} µs  (${onS.min.toFixed(2)}–${onS.max.toFixed(2)})`)
console.log(`  cost         ${(((onS.median / offS.median) - 1) * 100).toFixed(1)} % (medians)`)
