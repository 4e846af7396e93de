/**
 * Cost of the observability options on the ping path: server CPU time per
 * reply, each mode beside `off`, in the same run. Each server is its own
 * process (bench/servers/metrics-ping.ts); every round runs each mode once,
 * in an order rotated from round to round, under the same load:
 * `CONNECTIONS` clients, each keeping `WINDOW` pings in flight. In the
 * `metrics` rounds /metrics is scraped every second, as Prometheus would.
 * Reported: the median with min–max per mode, and the cost as the median of
 * the per-round ratios mode/off (paired rounds: a drift in the machine's
 * load moves both sides of a pair alike).
 *
 *   npm run bench:metrics                       (off, metrics; about a minute)
 *   npm run bench:metrics -- --modes off,metrics,tracing,tracing-sdk --rounds 9
 *
 * Pin it for steadier figures: `--server-cpu 1` starts each server under
 * `taskset -c 1`; run the load generator on the other core with
 * `taskset -c 0 npm run bench:metrics -- --server-cpu 1`.
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
    window: { type: 'string', default: '16' },
    modes: { type: 'string', default: 'off,metrics' },
    'server-cpu': { type: 'string' }
  }
})
const ROUNDS = Number(args.rounds)
const SECONDS = Number(args.seconds)
const CONNECTIONS = Number(args.connections)
const WINDOW = Number(args.window)
const MODES = args.modes.split(',')
if (MODES[0] !== 'off') throw new Error('--modes must start with off, the baseline')
const SERVER_CPU = args['server-cpu']

interface Server { child: ChildProcessByStdio<Writable, Readable, null>, lines: Interface, port: number, next: () => Promise<string> }

async function startServer (mode: string): Promise<Server> {
  const node = [process.execPath, '--import', 'tsx', 'bench/servers/metrics-ping.ts', mode]
  const command = SERVER_CPU === undefined ? node : ['taskset', '-c', SERVER_CPU, ...node]
  const child = spawn(command[0] as string, command.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] })
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

const servers = new Map<string, Server>()
for (const mode of MODES) servers.set(mode, await startServer(mode))
const perReply = new Map<string, number[]>(MODES.map((mode) => [mode, []]))
for (let r = 0; r < ROUNDS; r++) {
  // Rotated order: no mode always runs first (warmest or coldest) in its round.
  for (let i = 0; i < MODES.length; i++) {
    const mode = MODES[(i + r) % MODES.length] as string
    perReply.get(mode)?.push(await round(servers.get(mode) as Server, mode === 'metrics' || mode === 'on'))
  }
}
for (const server of servers.values()) server.child.stdin.write('exit\n')
const off = perReply.get('off') as number[]
const offS = spread(off)
console.log(`ping path, ${CONNECTIONS} connections × ${WINDOW} in flight, ${ROUNDS} rounds of ${SECONDS} s, server CPU per reply${SERVER_CPU === undefined ? '' : ` (servers on CPU ${SERVER_CPU})`}:`)
console.log(`  ${'off'.padEnd(12)} ${offS.median.toFixed(2)} µs  (${offS.min.toFixed(2)}–${offS.max.toFixed(2)})`)
for (const mode of MODES.slice(1)) {
  const values = perReply.get(mode) as number[]
  const s = spread(values)
  const ratios = spread(values.map((v, i) => (v / (off[i] as number) - 1) * 100))
  console.log(`  ${mode.padEnd(12)} ${s.median.toFixed(2)} µs  (${s.min.toFixed(2)}–${s.max.toFixed(2)})  cost ${ratios.median >= 0 ? '+' : ''}${ratios.median.toFixed(1)} % (paired rounds ${ratios.min.toFixed(1)} … ${ratios.max.toFixed(1)} %; medians ${(((s.median / offS.median) - 1) * 100).toFixed(1)} %)`)
}
