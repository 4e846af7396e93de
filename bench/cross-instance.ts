/**
 * Cross-instance room-message benchmark (issue 5, "Benchmark and docs").
 *
 *   npx tsx bench/cross-instance.ts [--quick]
 *
 * Starts its own redis-server (spare port, temp dir, persistence off) and
 * the servers as child processes, then measures room-message latency and
 * throughput on loopback for:
 *   (a) one plugin instance, in-memory adapter: sender and receiver on it;
 *   (b) two plugin instances with RedisAdapter: sender on A, receiver on B;
 *   (c) Socket.IO 4 + @socket.io/redis-adapter: sender on A, receiver on B.
 * Sender and receiver clients live in this process, so latency is receive
 * time minus send time on one clock (performance.now()).
 * Two loads: a fixed send rate, and a max-throughput run with a window of
 * outstanding (sent, not yet received) messages. Writes the table to
 * docs/performance-cross-instance.md.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHistogram, performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { io as ioClient, type Socket } from 'socket.io-client'
import { freePort, waitForPort } from '../test/helpers/redis.js'
import { delay } from '../test/helpers/wait.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 1 : 3
const RATE = 2000 // messages/s, fixed-rate load
const DURATION_MS = quick ? 3000 : 10_000
const WINDOW = 64 // outstanding messages in the max-throughput run
const DRAIN_MS = 2000 // wait for stragglers after a run
const WARMUP = 2000 // messages before measuring, per scenario and round
const ROOM = 'bench-room'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')

interface Message { room: string, seq: number, t: number }

/** A sender and a receiver connected to the same room. */
interface Pair {
  send: (message: Message) => void
  onHeard: (listener: (message: Message) => void) => void
  close: () => Promise<void>
}

interface RunResult { p50: number, p99: number, max: number, perSecond: number, sent: number, received: number }

interface Scenario { key: string, label: string, connect: () => Promise<Pair> }

const children: ChildProcess[] = []
let redisDir: string | null = null

async function startRedis (): Promise<string> {
  const binary = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  if (binary === '') throw new Error('redis-server not found (apt-get install -y redis-server)')
  redisDir = mkdtempSync(join(tmpdir(), 'wsr-bench-redis-'))
  const port = await freePort()
  const child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--protected-mode', 'no'], { stdio: 'ignore' })
  children.push(child)
  await waitForPort(port)
  return `redis://127.0.0.1:${port}`
}

/** `env -u NODE_OPTIONS node --import tsx <file>`; resolves with the printed port. */
async function startServer (file: string, env: Record<string, string>): Promise<number> {
  const proc = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, '--import', 'tsx', join(here, 'cross-instance', file)], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  children.push(proc)
  let output = ''
  return await new Promise<number>((resolve, reject) => {
    proc.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      const line = output.split('\n').find((l) => l.startsWith('{'))
      if (line !== undefined) resolve((JSON.parse(line) as { port: number }).port)
    })
    proc.once('exit', (code) => reject(new Error(`${file} exited early (${code})`)))
  })
}

async function stopAll (): Promise<void> {
  await Promise.all(children.map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
    await exited
    clearTimeout(timer)
  }))
  children.length = 0
  if (redisDir !== null) rmSync(redisDir, { recursive: true, force: true })
  redisDir = null
}

// --- clients -------------------------------------------------------------

async function wsOpen (url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  await once(ws, 'open')
  return ws
}

async function wsJoin (ws: WebSocket, room: string): Promise<void> {
  const id = `join-${Math.random()}`
  const joined = new Promise<void>((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData): void => {
      const frame = JSON.parse(data.toString()) as { type: string, id?: string }
      if (frame.id !== id) return
      ws.off('message', onMessage)
      if (frame.type === 'error') reject(new Error(`join failed: ${data.toString()}`))
      else resolve()
    }
    ws.on('message', onMessage)
  })
  ws.send(JSON.stringify({ type: 'join', id, payload: { room } }))
  await joined
}

async function pluginPair (senderPort: number, receiverPort: number): Promise<Pair> {
  const sender = await wsOpen(`ws://127.0.0.1:${senderPort}/ws?user=sender`)
  const receiver = await wsOpen(`ws://127.0.0.1:${receiverPort}/ws?user=receiver`)
  await wsJoin(sender, ROOM)
  await wsJoin(receiver, ROOM)
  return {
    send: (message) => { sender.send(JSON.stringify({ type: 'say', payload: message })) },
    onHeard: (listener) => {
      receiver.on('message', (data: WebSocket.RawData) => {
        const frame = JSON.parse(data.toString()) as { type: string, payload: Message }
        if (frame.type === 'heard') listener(frame.payload)
      })
    },
    close: async () => {
      for (const ws of [sender, receiver]) {
        const closed = once(ws, 'close')
        ws.close()
        await closed
      }
    }
  }
}

async function ioOpen (port: number): Promise<Socket> {
  const socket = ioClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('connect_error', reject)
  })
  return socket
}

async function socketIoPair (senderPort: number, receiverPort: number): Promise<Pair> {
  const sender = await ioOpen(senderPort)
  const receiver = await ioOpen(receiverPort)
  await sender.timeout(5000).emitWithAck('join', ROOM)
  await receiver.timeout(5000).emitWithAck('join', ROOM)
  return {
    send: (message) => { sender.emit('say', message) },
    onHeard: (listener) => { receiver.on('heard', listener) },
    close: async () => {
      sender.disconnect()
      receiver.disconnect()
    }
  }
}

// --- loads ---------------------------------------------------------------

function summarize (histogram: ReturnType<typeof createHistogram>, sent: number, received: number, elapsedMs: number): RunResult {
  const us = (value: number): number => value / 1000
  return {
    p50: us(histogram.percentile(50)),
    p99: us(histogram.percentile(99)),
    max: us(histogram.max),
    perSecond: received / (elapsedMs / 1000),
    sent,
    received
  }
}

/** Shared receive state for one pair: the current run's listener. */
interface Channel { pair: Pair, listener: (message: Message) => void }

function channel (pair: Pair): Channel {
  const state: Channel = { pair, listener: () => {} }
  pair.onHeard((message) => state.listener(message))
  return state
}

async function warmup (ch: Channel): Promise<void> {
  let received = 0
  let seq = 0
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`warm-up: ${received}/${WARMUP} messages arrived`)), 30_000)
    const next = (): void => { if (seq < WARMUP) ch.pair.send({ room: ROOM, seq: seq++, t: performance.now() }) }
    ch.listener = () => {
      received++
      if (received === WARMUP) { clearTimeout(timer); resolve() } else next()
    }
    for (let i = 0; i < WINDOW; i++) next()
  })
  ch.listener = () => {}
}

/** Nanoseconds, recorded as integers (the histogram needs >= 1). */
function record (histogram: ReturnType<typeof createHistogram>, message: Message): void {
  histogram.record(Math.max(1, Math.round((performance.now() - message.t) * 1e6)))
}

async function fixedRate (ch: Channel): Promise<RunResult> {
  const histogram = createHistogram()
  let sent = 0
  let received = 0
  let lastReceivedAt = performance.now()
  ch.listener = (message) => { record(histogram, message); received++; lastReceivedAt = performance.now() }
  const total = Math.round(RATE * DURATION_MS / 1000)
  const started = performance.now()
  while (sent < total) {
    const due = Math.min(total, Math.floor((performance.now() - started) * RATE / 1000))
    while (sent < due) ch.pair.send({ room: ROOM, seq: sent++, t: performance.now() })
    await delay(2)
  }
  const sendEnded = performance.now()
  const drained = (): boolean => received >= sent || performance.now() - sendEnded >= DRAIN_MS
  while (!drained()) await delay(5)
  ch.listener = () => {}
  // delivered/s over the send period plus however long the last message took
  return summarize(histogram, sent, received, Math.max(lastReceivedAt, sendEnded) - started)
}

async function maxThroughput (ch: Channel): Promise<RunResult> {
  const histogram = createHistogram()
  let sent = 0
  let received = 0
  let stop = false
  const started = performance.now()
  let endedAt = started
  const done = new Promise<void>((resolve) => {
    const send = (): void => { ch.pair.send({ room: ROOM, seq: sent++, t: performance.now() }) }
    ch.listener = (message) => {
      record(histogram, message)
      received++
      if (!stop) {
        if (performance.now() - started >= DURATION_MS) { stop = true; endedAt = performance.now() } else send()
      }
      if (stop && received === sent) resolve()
    }
    for (let i = 0; i < WINDOW; i++) send()
  })
  const timeout = delay(DURATION_MS + DRAIN_MS + 5000).then(() => { stop = true })
  await Promise.race([done, timeout])
  ch.listener = () => {}
  if (endedAt === started) endedAt = performance.now()
  return summarize(histogram, sent, received, endedAt - started)
}

// --- report --------------------------------------------------------------

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

function cell (values: number[], digits: number): string {
  const fmt = (v: number): string => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  if (values.length === 1) return fmt(values[0])
  return `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`
}

function lossCell (runs: RunResult[]): string {
  const lost = runs.map((r) => r.sent - r.received)
  return lost.every((l) => l === 0) ? '0' : lost.join(' / ')
}

async function main (): Promise<void> {
  const startedAt = new Date()
  const loadBefore = loadavg()
  const redisUrl = await startRedis()
  const memoryPort = await startServer('plugin-instance.ts', {})
  const pluginA = await startServer('plugin-instance.ts', { REDIS_URL: redisUrl, INSTANCE_ID: 'bench-a' })
  const pluginB = await startServer('plugin-instance.ts', { REDIS_URL: redisUrl, INSTANCE_ID: 'bench-b' })
  const ioA = await startServer('socketio-instance.ts', { REDIS_URL: redisUrl })
  const ioB = await startServer('socketio-instance.ts', { REDIS_URL: redisUrl })

  const scenarios: Scenario[] = [
    { key: 'a', label: '(a) plugin, 1 instance, in-memory', connect: async () => await pluginPair(memoryPort, memoryPort) },
    { key: 'b', label: '(b) plugin, 2 instances, RedisAdapter (A → B)', connect: async () => await pluginPair(pluginA, pluginB) },
    { key: 'c', label: '(c) Socket.IO 4 + @socket.io/redis-adapter (A → B)', connect: async () => await socketIoPair(ioA, ioB) }
  ]
  const results = new Map<string, { fixed: RunResult[], max: RunResult[] }>()
  for (const s of scenarios) results.set(s.key, { fixed: [], max: [] })

  for (let round = 0; round < ROUNDS; round++) {
    // rotate the order each round: a b c, b c a, c a b
    const order = scenarios.map((_, i) => scenarios[(i + round) % scenarios.length])
    for (const scenario of order) {
      const pair = await scenario.connect()
      await delay(200) // the receiver's instance subscribes asynchronously
      const ch = channel(pair)
      await warmup(ch)
      const fixed = await fixedRate(ch)
      const max = await maxThroughput(ch)
      await pair.close()
      const entry = results.get(scenario.key)
      entry?.fixed.push(fixed)
      entry?.max.push(max)
      console.error(`round ${round + 1}/${ROUNDS} ${scenario.label}: fixed p50 ${fixed.p50.toFixed(0)} µs p99 ${fixed.p99.toFixed(0)} µs ${fixed.received}/${fixed.sent}; max ${max.perSecond.toFixed(0)} msg/s p50 ${max.p50.toFixed(0)} µs p99 ${max.p99.toFixed(0)} µs ${max.received}/${max.sent}`)
    }
  }

  const command = `npx tsx bench/cross-instance.ts${quick ? ' --quick' : ''}`
  const header = '| Scenario | Fixed rate: p50 µs | p99 µs | max µs | delivered msg/s | lost | Max throughput: delivered msg/s | p50 µs | p99 µs | max µs | lost |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
  const rows = scenarios.map((s) => {
    const r = results.get(s.key) ?? { fixed: [], max: [] }
    return `| ${s.label} | ${cell(r.fixed.map((x) => x.p50), 0)} | ${cell(r.fixed.map((x) => x.p99), 0)} | ${cell(r.fixed.map((x) => x.max), 0)} | ${cell(r.fixed.map((x) => x.perSecond), 0)} | ${lossCell(r.fixed)} | ${cell(r.max.map((x) => x.perSecond), 0)} | ${cell(r.max.map((x) => x.p50), 0)} | ${cell(r.max.map((x) => x.p99), 0)} | ${cell(r.max.map((x) => x.max), 0)} | ${lossCell(r.max)} |`
  })
  const table = [header, ...rows].join('\n')
  console.log(table)

  const loadAfter = loadavg()
  const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ')
  const cpuModel = cpus()[0]?.model ?? 'unknown'
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim()
  const doc = `# Performance: cross-instance room messages

Room-message latency and throughput on loopback, one sender and one
receiver in the same room, for the plugin on one instance (in-memory
adapter), the plugin on two instances sharing rooms through \`RedisAdapter\`,
and, as the anchor, Socket.IO 4 with \`@socket.io/redis-adapter\` on two
instances. Generated by \`bench/cross-instance.ts\`; do not edit the figures
by hand.

- Command: \`${command}\`
- Date: ${startedAt.toISOString()}
- Machine: ${cpus().length} CPUs (nproc), ${cpuModel}; node ${process.version}; ${redisVersion.split(' ').slice(0, 3).join(' ')}
- Load average (1 / 5 / 15 min) at start: ${load(loadBefore)}; at end: ${load(loadAfter)}
  (anything else running on the machine shows up here and in the figures)
- Rounds: ${ROUNDS}${ROUNDS > 1 ? ', scenario order rotated each round; cells are median (min–max) over rounds' : ' (--quick)'}

**The machine has ${cpus().length} cores, shared by redis-server, every server
process (all five run for the whole benchmark, idle when not measured) and
the client process that holds both the sender and the receiver.** Figures are
relative to one another on this machine, not capacity figures.

## Method

- Servers are child processes (\`bench/cross-instance/plugin-instance.ts\`,
  \`bench/cross-instance/socketio-instance.ts\`); redis-server is started on a
  spare port with \`--save '' --appendonly no\` in a temporary directory.
- Plugin: the sender sends \`{type: 'say', payload: {room, seq, t}}\` (no id,
  so no reply); the handler calls
  \`router.sendToRoom(room, 'heard', payload, { except: ctx.connectionId })\`.
  Clients are \`ws\`. Socket.IO: the sender emits \`say\`; the server handler
  calls \`socket.to(room).emit('heard', message)\`. Client is
  \`socket.io-client\`, WebSocket transport only.
- \`t\` is \`performance.now()\` in the client process when sending; latency is
  receive time minus \`t\` in that same process (\`perf_hooks.createHistogram\`).
- Per scenario and round: connect, join, wait 200 ms for subscriptions,
  ${WARMUP} warm-up messages (window ${WINDOW}), then:
  - **Fixed rate**: ${RATE} messages/s for ${DURATION_MS / 1000} s (batches sent
    every ~2 ms to keep the schedule), then up to ${DRAIN_MS / 1000} s to drain.
    Delivered msg/s = received / (first send to last receipt).
  - **Max throughput**: ${WINDOW} messages outstanding; each receipt sends the
    next, for ${DURATION_MS / 1000} s. Delivered msg/s = received / elapsed.
- Lost = sent − received (per round when not zero).

## Results

${table}
`
  // bench/cross-instance-cluster.ts owns the section from its heading on: keep it.
  const docPath = join(root, 'docs', 'performance-cross-instance.md')
  const previous = existsSync(docPath) ? readFileSync(docPath, 'utf8') : ''
  const clusterSection = previous.indexOf('## Redis Cluster against one Redis node')
  writeFileSync(docPath, clusterSection === -1 ? doc : `${doc}\n${previous.slice(clusterSection)}`)
  console.error('wrote docs/performance-cross-instance.md')
}

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return
    stopping = true
    stopAll().finally(() => process.exit(130))
  })
}

try {
  await main()
} catch (error) {
  console.error(error)
  process.exitCode = 1
} finally {
  await stopAll()
}
