/**
 * `npm run soak`: the reliability figures at the goal's scale (issue 15),
 * on loopback, against one server process (bench/soak/server.ts), in four
 * phases that each stop by themselves:
 *
 * 1. connections: 10 000 clients open on one instance (the default
 *    `maxConnections`), each in a room, heartbeating, with a trickle of room
 *    messages: server RSS and heap per connection, event-loop delay, the
 *    cost of a heartbeat pass;
 * 2. churn: 100 000 connect / join / message / close cycles, half of them
 *    abrupt (TCP RST): heap growth after GC, every registry back to zero;
 * 3. hostile: 1 000 000 hostile frames from test/helpers/hostile.ts over
 *    many connections, plus byte-level frames on raw TCP: no exit, no
 *    uncaught exception or unhandled rejection, every readable id answered
 *    or a documented close, a fresh client served afterwards;
 * 4. shutdown: 1 000 clients, 10 % of them stalled: every reader gets
 *    1001, `close()` resolves within the grace + 1 s.
 *
 * Options: --scale <f> (multiplies every count; default 1), --phases
 * <list> (default all), --seed <n>, --record / --no-record (write
 * docs/reliability.md and bench/results/soak-*.json; default: only at
 * scale 1), --render <results.json> (only write docs/reliability.md again
 * from a recorded run). Exit code 1 when a requirement fails. Run it under `nice -n 19`
 * on a shared machine; it is not part of `npm test`.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type net from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import WebSocket from 'ws'
import { countClientFrames, hostileFrame, IdSource, rawScenario, render } from '../test/helpers/hostile.js'
import { DOCUMENTED_CLOSE_CODES, driveConnection, driveRaw, violations, type Unanswered } from '../test/helpers/hostile-client.js'
import type { HostileProfile } from '../test/helpers/hostile-app.js'
import { delay } from '../test/helpers/wait.js'

const here = fileURLToPath(new URL('.', import.meta.url))
const root = join(here, '..')

// ---------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2)
function flag (name: string): string | undefined {
  const at = argv.indexOf(`--${name}`)
  return at === -1 ? undefined : argv[at + 1]
}
if (argv.includes('--help')) {
  console.log('npm run soak [-- --scale 0.01] [--phases connections,churn,hostile,shutdown] [--seed 1] [--record|--no-record] [--render bench/results/soak-<time>.json]')
  process.exit(0)
}
const renderFrom = flag('render')
if (renderFrom !== undefined) {
  // Write docs/reliability.md's figures again from a recorded run, without running anything.
  const { renderReliability } = await import('./soak/report.js')
  const docs = join(root, 'docs', 'reliability.md')
  writeFileSync(docs, renderReliability(readFileSync(docs, 'utf8'), JSON.parse(readFileSync(join(root, renderFrom), 'utf8')), renderFrom))
  console.log(`docs/reliability.md rendered from ${renderFrom}`)
  process.exit(0)
}
const scale = Number(flag('scale') ?? 1)
const phases = new Set((flag('phases') ?? 'connections,churn,hostile,shutdown').split(','))
const seed = Number(flag('seed') ?? 20261129)
const record = argv.includes('--record') || (scale === 1 && !argv.includes('--no-record'))
const count = (n: number): number => Math.max(1, Math.round(n * scale))

const N_CONNECTIONS = count(10_000)
const STEADY_MS = scale >= 1 ? 60_000 : 10_000
const N_CYCLES = count(100_000)
const N_HOSTILE = count(1_000_000)
const N_SHUTDOWN = count(1_000)
/**
 * Time caps, so that the whole run stays within 15 minutes: the churn phase
 * stops after 5 minutes; the hostile phase after 8, or sooner so that the
 * first three phases end 14 minutes after the start (the shutdown phase
 * takes about a minute).
 */
const CHURN_CAP_MS = 300_000
const HOSTILE_CAP_MS = 480_000
const FIRST_THREE_PHASES_MS = 14 * 60_000
const runStartedMs = Date.now()

/** Loopback source addresses, so ephemeral ports never run short. */
const SOURCES = Array.from({ length: 50 }, (_, i) => `127.0.0.${i + 2}`)
const source = (i: number): string => SOURCES[i % SOURCES.length] as string

const failures: string[] = []
function verify (ok: boolean, what: string): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
  if (!ok) failures.push(what)
}

// ---------------------------------------------------------------------------
// The server process

interface Memory { rss: number, heapUsed: number, heapTotal: number, external: number, arrayBuffers: number }
type Registries = Record<string, number>
interface ServerStats {
  memory: Memory
  cpu: { user: number, system: number }
  faults: { uncaught: number, unhandled: number, first: string[] }
  routers: Record<string, { registries: Registries, stats: { connections: { open: number, total: number, closedByCode: Record<string, number> }, frames: { received: number }, protocolErrors: Record<string, number>, refused: Record<string, number> } }>
}

class ServerProcess {
  private seq = 0
  private readonly waiting = new Map<number, { resolve: (value: any) => void, reject: (err: Error) => void }>()
  exitCode: number | null = null
  exitSignal: string | null = null

  private constructor (readonly child: ChildProcess, readonly ports: Record<string, number>) {
    child.on('message', (message: { seq?: number, result?: unknown, error?: string }) => {
      if (message.seq === undefined) return
      const waiter = this.waiting.get(message.seq)
      this.waiting.delete(message.seq)
      if (message.error !== undefined) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.result)
    })
    child.on('exit', (code, signal) => {
      this.exitCode = code
      this.exitSignal = signal
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`server exited (${String(code ?? signal)})`))
    })
  }

  static async start (env: Record<string, string>): Promise<ServerProcess> {
    // The server's own file limit raised to the hard limit: it holds one descriptor per client.
    const child = spawn('sh', ['-c', 'ulimit -n "$(ulimit -Hn)"; exec "$@"', 'sh', 'env', '-u', 'NODE_OPTIONS', process.execPath, '--expose-gc', '--import', 'tsx', join(here, 'soak', 'server.ts')], {
      cwd: root,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, ...env }
    })
    const ports = await new Promise<Record<string, number>>((resolve, reject) => {
      child.once('message', (message: { ready?: boolean, ports: Record<string, number> }) => resolve(message.ports))
      child.once('exit', (code) => reject(new Error(`server process exited with ${String(code)} before it was ready`)))
    })
    return new ServerProcess(child, ports)
  }

  async request<T>(command: Record<string, unknown>): Promise<T> {
    const seq = ++this.seq
    return await new Promise<T>((resolve, reject) => {
      this.waiting.set(seq, { resolve, reject })
      this.child.send({ seq, command })
    })
  }

  async stats (): Promise<ServerStats> { return await this.request<ServerStats>({ cmd: 'stats' }) }
  async gc (): Promise<Memory> { return (await this.request<{ memory: Memory }>({ cmd: 'gc' })).memory }

  url (profile: HostileProfile, query = ''): string {
    return `ws://127.0.0.1:${this.ports[profile] ?? 0}/ws${query}`
  }

  async stop (): Promise<void> {
    if (this.exitCode !== null || this.exitSignal !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    await this.request({ cmd: 'exit' }).catch(() => {})
    await exited
  }
}

async function waitForRegistries (server: ServerProcess, profile: HostileProfile, timeoutMs: number): Promise<Registries> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const registries = (await server.stats()).routers[profile]?.registries as Registries
    if (Object.values(registries).every((n) => n === 0) || Date.now() > deadline) return registries
    await delay(200)
  }
}

const MiB = 1024 * 1024
const fmt = (n: number, digits = 1): string => n.toFixed(digits)

/** Run `task(i)` for i in [from, to) with `concurrency` loops; stop early when `stop()` holds. */
async function pool (from: number, to: number, concurrency: number, task: (i: number) => Promise<void>, stop: () => boolean = () => false): Promise<number> {
  let next = from
  let done = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < to && !stop()) {
      await task(next++)
      done++
    }
  }))
  return done
}

// ---------------------------------------------------------------------------
// Phase 1: 10 000 connections

interface Held { ws: WebSocket, room: string, messages: number }

async function openHeld (url: string, i: number, room: string): Promise<Held> {
  const ws = new WebSocket(url, { localAddress: source(i), perMessageDeflate: false })
  const held: Held = { ws, room, messages: 0 }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('connection timed out')), 60_000)
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`HTTP ${res.statusCode ?? 0}`)) })
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    ws.on('message', (data) => {
      held.messages++
      const text = data.toString()
      if (text.startsWith('{"type":"connection_established"')) ws.send(JSON.stringify({ type: 'join', id: 'j', payload: { room } }))
      else if (text.startsWith('{"type":"joined"')) { clearTimeout(timer); resolve() }
    })
  })
  ws.on('error', () => {})
  return held
}

async function phaseConnections (): Promise<Record<string, unknown>> {
  console.log(`\n# connections: ${N_CONNECTIONS} clients on one instance, ${STEADY_MS / 1000} s steady`)
  const server = await ServerProcess.start({ SOAK_PROFILES: 'default' })
  const rooms = Math.max(1, Math.round(N_CONNECTIONS / 100))
  const before = await server.gc()
  const held: Held[] = new Array(N_CONNECTIONS)
  const openStarted = Date.now()
  let openFailed = 0
  await pool(0, N_CONNECTIONS, 100, async (i) => {
    try {
      held[i] = await openHeld(server.url('default', `?user=u${i}`), i, `room-${i % rooms}`)
    } catch (err) {
      openFailed++
      if (openFailed <= 3) console.log(`  open ${i} failed: ${(err as Error).message}`)
    }
  })
  const openMs = Date.now() - openStarted
  verify(openFailed === 0, `${N_CONNECTIONS} connections opened in ${fmt(openMs / 1000)} s (${openFailed} failed)`)
  let overLimit: string | null = null
  if (N_CONNECTIONS === 10_000) {
    // One past the default maxConnections: refused before the upgrade.
    overLimit = await openHeld(server.url('default', '?user=extra'), 0, 'x').then((h) => { h.ws.terminate(); return '101' }, (err: Error) => err.message)
    verify(overLimit === 'HTTP 503', `the 10 001st client is refused with 503 SERVER_FULL (${overLimit})`)
  }
  const after = await server.gc()
  const open = held.filter((h) => h !== undefined)
  const perConnection = { rssKiB: (after.rss - before.rss) / open.length / 1024, heapKiB: (after.heapUsed - before.heapUsed) / open.length / 1024 }
  console.log(`  per connection: RSS ${fmt(perConnection.rssKiB)} KiB, heap ${fmt(perConnection.heapKiB)} KiB (after GC; RSS ${fmt(after.rss / MiB)} MiB, heap ${fmt(after.heapUsed / MiB)} MiB)`)

  // Steady: clients heartbeat every 25 s (staggered), 10 room messages per second, server pings every 25 s (production preset).
  await server.request({ cmd: 'eld-reset' })
  const cpuBefore = (await server.stats()).cpu
  const steadyStarted = Date.now()
  const heartbeats = open.map((h, i) => setTimeout(() => {
    const timer = setInterval(() => { if (h.ws.readyState === WebSocket.OPEN) h.ws.send('{"type":"heartbeat"}') }, 25_000)
    timer.unref()
    heartbeats[i] = timer
  }, Math.floor(Math.random() * 25_000)))
  let sent = 0
  let acked = 0
  let ackTotal = 0
  const deliveriesBefore = open.reduce((sum, h) => sum + h.messages, 0)
  const acks: Array<Promise<void>> = []
  const trickle = setInterval(() => {
    const h = open[Math.floor(Math.random() * open.length)]
    if (h === undefined || h.ws.readyState !== WebSocket.OPEN) return
    const id = `m${++sent}`
    acks.push(new Promise<void>((resolve) => {
      const onMessage = (data: WebSocket.RawData): void => {
        const text = data.toString()
        if (!text.startsWith('{"type":"message_ack"') || !text.includes(`"id":"${id}"`)) return
        h.ws.off('message', onMessage)
        acked++
        ackTotal += (JSON.parse(text) as { payload: { deliveredTo: number } }).payload.deliveredTo
        resolve()
      }
      h.ws.on('message', onMessage)
      setTimeout(resolve, 10_000).unref()
    }))
    h.ws.send(JSON.stringify({ type: 'user_message', id, payload: { room: h.room, text: `trickle ${sent}` } }))
  }, 100)
  await delay(STEADY_MS)
  clearInterval(trickle)
  for (const timer of heartbeats) clearTimeout(timer)
  await Promise.all(acks)
  const steadyMs = Date.now() - steadyStarted
  const cpuAfter = (await server.stats()).cpu
  const eld = await server.request<{ p50: number, p99: number, max: number }>({ cmd: 'eld-reset' })
  const serverCpuPercent = ((cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / 1000) / steadyMs * 100
  const deliveries = open.reduce((sum, h) => sum + h.messages, 0) - deliveriesBefore
  console.log(`  steady ${fmt(steadyMs / 1000)} s: event-loop delay p50 ${fmt(eld.p50, 2)} ms, p99 ${fmt(eld.p99, 2)} ms, max ${fmt(eld.max, 2)} ms; server CPU ${fmt(serverCpuPercent)} % of a core`)
  console.log(`  trickle: ${sent} room messages, ${acked} acked, ${ackTotal} deliveries reported, ${deliveries} frames received by clients`)
  verify(acked === sent, `every room message acked (${acked}/${sent})`)

  // Heartbeat cost: a pass over every connection, timed on the server.
  const heartbeat = await server.request<{ tickMs: number[], tickCpuMs: number[], connections: number }>({ cmd: 'heartbeat', profile: 'default', ticks: 3 })
  const tickCpuMs = Math.min(...heartbeat.tickCpuMs)
  console.log(`  heartbeat pass over ${heartbeat.connections} connections: CPU ${heartbeat.tickCpuMs.map((ms) => fmt(ms, 1)).join(', ')} ms (${fmt(tickCpuMs * 1000 / heartbeat.connections, 2)} µs per connection), wall ${heartbeat.tickMs.map((ms) => fmt(ms, 1)).join(', ')} ms`)
  const stats = await server.stats()
  verify(stats.routers.default?.registries.connections === open.length, `all ${open.length} still open after the steady period (${String(stats.routers.default?.registries.connections)})`)

  for (const h of open) h.ws.terminate()
  const registries = await waitForRegistries(server, 'default', 30_000)
  verify(Object.values(registries).every((n) => n === 0), `registries back to zero after the clients left (${JSON.stringify(registries)})`)
  await server.stop()
  return {
    connections: open.length,
    openSeconds: openMs / 1000,
    overLimit,
    rssBeforeMiB: before.rss / MiB,
    rssAfterMiB: after.rss / MiB,
    heapBeforeMiB: before.heapUsed / MiB,
    heapAfterMiB: after.heapUsed / MiB,
    perConnection,
    steadySeconds: steadyMs / 1000,
    eventLoopDelayMs: eld,
    serverCpuPercent,
    trickle: { sent, acked, deliveriesReported: ackTotal, framesReceived: deliveries },
    heartbeat: { tickMs: heartbeat.tickMs, tickCpuMs: heartbeat.tickCpuMs, connections: heartbeat.connections, cpuUsPerConnection: tickCpuMs * 1000 / heartbeat.connections }
  }
}

// ---------------------------------------------------------------------------
// Phase 2: churn

async function cycle (url: string, i: number, rooms: number): Promise<void> {
  const ws = new WebSocket(url, { localAddress: source(i), perMessageDeflate: false })
  const room = `churn-${i % rooms}`
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('cycle timed out')) }, 30_000)
    ws.once('unexpected-response', (_req, res) => { clearTimeout(timer); reject(new Error(`HTTP ${res.statusCode ?? 0}`)) })
    ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    ws.on('message', (data) => {
      const text = data.toString()
      if (text.startsWith('{"type":"connection_established"')) {
        ws.send(JSON.stringify({ type: 'join', id: 'j', payload: { room } }))
      } else if (text.startsWith('{"type":"joined"')) {
        ws.send(JSON.stringify({ type: 'user_message', id: 'm', payload: { room, text: `cycle ${i}` } }))
      } else if (text.startsWith('{"type":"message_ack"')) {
        clearTimeout(timer)
        if (i % 2 === 0) {
          // Abrupt: a TCP RST, no close frame, no FIN.
          (ws as unknown as { _socket: net.Socket })._socket.resetAndDestroy()
          resolve()
        } else {
          ws.once('close', () => resolve())
          ws.close(1000)
        }
      }
    })
  })
  ws.on('error', () => {})
}

async function phaseChurn (): Promise<Record<string, unknown>> {
  console.log(`\n# churn: ${N_CYCLES} connect/join/message/close cycles, half abrupt (RST)`)
  const server = await ServerProcess.start({ SOAK_PROFILES: 'default' })
  const url = (i: number): string => server.url('default', `?user=c${i % 1000}`)
  const warmup = Math.min(2000, Math.max(1, Math.round(N_CYCLES / 50)))
  let failed = 0
  const errors = new Map<string, number>()
  const run = async (i: number): Promise<void> => {
    try {
      await cycle(url(i), i, 50)
    } catch (err) {
      failed++
      errors.set((err as Error).message, (errors.get((err as Error).message) ?? 0) + 1)
    }
  }
  await pool(0, warmup, 50, run)
  await waitForRegistries(server, 'default', 30_000)
  const before = await server.gc()
  const started = Date.now()
  const done = warmup + await pool(warmup, N_CYCLES, 50, run, () => Date.now() - started > CHURN_CAP_MS)
  const seconds = (Date.now() - started) / 1000
  const registries = await waitForRegistries(server, 'default', 30_000)
  const after = await server.gc()
  const stats = await server.stats()
  const router = stats.routers.default
  const growthMiB = (after.heapUsed - before.heapUsed) / MiB
  console.log(`  ${done} cycles (${fmt((done - warmup) / seconds, 0)} per second), ${failed} failed ${JSON.stringify(Object.fromEntries(errors))}`)
  console.log(`  heap after GC: ${fmt(before.heapUsed / MiB, 2)} → ${fmt(after.heapUsed / MiB, 2)} MiB; RSS ${fmt(before.rss / MiB)} → ${fmt(after.rss / MiB)} MiB`)
  verify(done === N_CYCLES, `all ${N_CYCLES} cycles ran within the time cap (${done})`)
  verify(failed === 0, `no cycle failed (${failed})`)
  verify(growthMiB < 5, `heap growth after GC ${fmt(growthMiB, 2)} MiB < 5 MiB`)
  verify(Object.values(registries).every((n) => n === 0), `every registry back to zero ${JSON.stringify(registries)}`)
  verify(router?.stats.connections.open === 0 && router?.stats.connections.total === done, `connections: ${String(router?.stats.connections.open)} open, ${String(router?.stats.connections.total)} total`)
  await server.stop()
  return {
    cycles: done,
    warmup,
    seconds,
    cyclesPerSecond: (done - warmup) / seconds,
    failed,
    errors: Object.fromEntries(errors),
    heapBeforeMiB: before.heapUsed / MiB,
    heapAfterMiB: after.heapUsed / MiB,
    heapGrowthMiB: growthMiB,
    rssBeforeMiB: before.rss / MiB,
    rssAfterMiB: after.rss / MiB,
    registries,
    closedByCode: router?.stats.connections.closedByCode
  }
}

// ---------------------------------------------------------------------------
// Phase 3: hostile frames

/** Error lines the hostile app's own handlers cause on purpose. */
const PURPOSEFUL = ['handler failed on purpose', 'method failed on purpose', 'json-rpc method failed']

async function phaseHostile (): Promise<Record<string, unknown>> {
  console.log(`\n# hostile: ${N_HOSTILE} frames (message level over ws, byte level over raw TCP), seed ${seed}`)
  const dir = mkdtempSync(join(tmpdir(), 'wsr-soak-'))
  const logFile = join(dir, 'server.log')
  const server = await ServerProcess.start({ SOAK_LOG: logFile })
  const arbitrary = hostileFrame()
  const closing = hostileFrame({ closers: true })
  const raw = rawScenario()
  const totals = { frames: 0, messageFrames: 0, rawFrames: 0, connections: 0, rawConnections: 0, expected: 0, answered: 0, stalled: 0, rateLimitedBatchIds: 0 }
  const closes = new Map<string, number>()
  const undocumented = new Map<string, number>()
  const mismatched: string[] = []
  const unanswered: Array<Unanswered & { connection: number, profile: string }> = []
  const rawFailures: string[] = []
  const started = Date.now()
  let next = 0
  const bump = (map: Map<string, number>, key: string): void => { map.set(key, (map.get(key) ?? 0) + 1) }
  const capMs = Math.min(HOSTILE_CAP_MS, runStartedMs + FIRST_THREE_PHASES_MS - started)
  const stop = (): boolean => totals.frames >= N_HOSTILE || Date.now() - started > capMs
  let lastReport = Date.now()

  async function messageConnection (n: number): Promise<void> {
    const profile: HostileProfile = n % 10 < 2 ? 'default' : n % 10 < 4 ? 'rpc' : 'fuzz'
    const size = 50 + (n * 7919) % 350
    const ids = new IdSource(`k${n}-`, n * 10_000)
    // A third of the connections also get frames that close them (1007, 1009); the rest live longer.
    const frames = fc.sample(n % 3 === 0 ? closing : arbitrary, { seed: seed + n, numRuns: size }).map((template) => render(template, ids))
    const report = await driveConnection(server.url(profile), frames, { protocol: profile === 'rpc' ? 'jsonrpc' : 'auto', chunk: 1 + n % 50 })
    totals.connections++
    totals.frames += report.sent
    totals.messageFrames += report.sent
    totals.expected += report.expected
    totals.answered += report.answered
    totals.rateLimitedBatchIds += report.rateLimitedBatch.length
    if (report.stalled) totals.stalled++
    const code = report.close?.code
    bump(closes, `${profile}:${code ?? 'client'}`)
    if (code !== undefined && !DOCUMENTED_CLOSE_CODES.has(code)) bump(undocumented, `${profile}:${code}`)
    if (profile !== 'default' && report.expectedClose !== null && code !== report.expectedClose && mismatched.length < 20) {
      mismatched.push(`connection ${n} (${profile}): expected ${report.expectedClose}, got ${String(code)}`)
    }
    for (const missing of violations(report)) unanswered.push({ ...missing, connection: n, profile })
  }

  async function rawConnections (n: number): Promise<void> {
    const scenarios = fc.sample(raw, { seed: seed + n, numRuns: 10 })
    for (const [k, built] of scenarios.entries()) {
      const scenario = built.build(new IdSource(`r${n}-${k}-`, 0))
      const profile: HostileProfile = k % 2 === 0 ? 'fuzz' : 'default'
      const report = await driveRaw(server.ports[profile] ?? 0, '/ws', scenario, 1 + (n + k * 37) % 300)
      const frames = countClientFrames(scenario.bytes) + (scenario.close === null ? 2 : 0)
      totals.frames += frames
      totals.rawFrames += frames
      totals.rawConnections++
      const want = scenario.close ?? 1000
      const missing = scenario.ids.filter((key) => !report.answered.has(key))
      if ((report.close !== want || missing.length > 0 || (scenario.close === null && !report.sentinelAnswered)) && rawFailures.length < 20) {
        rawFailures.push(`connection ${n}/${k} ${scenario.kind}: close ${String(report.close)} (want ${want}), unanswered ${missing.length}`)
      }
    }
  }

  await pool(0, Number.MAX_SAFE_INTEGER, 32, async () => {
    const n = next++
    if (n % 20 === 19) await rawConnections(n)
    else await messageConnection(n)
    if (Date.now() - lastReport > 15_000) {
      lastReport = Date.now()
      console.log(`  … ${totals.frames} frames, ${totals.connections + totals.rawConnections} connections, ${fmt((Date.now() - started) / 1000, 0)} s`)
    }
  }, stop)
  const seconds = (Date.now() - started) / 1000
  const alive = server.exitCode === null && server.exitSignal === null
  const stats = alive ? await server.stats() : null
  const fresh: Record<string, boolean> = {}
  for (const profile of ['default', 'fuzz', 'rpc'] as const) {
    const frame = profile === 'rpc'
      ? { kind: 'fresh', binary: false, data: JSON.stringify({ jsonrpc: '2.0', method: 'sum', params: [1, 2], id: 'fresh' }) }
      : { kind: 'fresh', binary: false, data: JSON.stringify({ type: 'echo', id: 'fresh', payload: { text: 'still here' } }) }
    const report = await driveConnection(server.url(profile), [frame], { protocol: profile === 'rpc' ? 'jsonrpc' : 'auto', chunk: 1, answerTimeoutMs: 5000 }).catch(() => null)
    fresh[profile] = report !== null && report.answered === 2 && report.unanswered.length === 0
  }
  const registries: Record<string, Registries> = {}
  for (const profile of ['default', 'fuzz', 'rpc'] as const) registries[profile] = await waitForRegistries(server, profile, 30_000)
  await server.stop()
  const lines = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((line) => line.trim() !== '') : []
  const unexpectedLines = lines.filter((line) => !PURPOSEFUL.some((text) => line.includes(text)))
  rmSync(dir, { recursive: true, force: true })

  console.log(`  ${totals.frames} frames in ${fmt(seconds, 0)} s: ${totals.messageFrames} message-level on ${totals.connections} connections, ${totals.rawFrames} byte-level on ${totals.rawConnections} raw connections`)
  console.log(`  ids: ${totals.expected} owed, ${totals.answered} answered, ${totals.rateLimitedBatchIds} requests of rate-limited JSON-RPC batches unanswered (documented limit); closes ${JSON.stringify(Object.fromEntries(closes))}`)
  verify(totals.frames >= N_HOSTILE, `${N_HOSTILE} hostile frames sent within the time cap (${totals.frames})`)
  verify(alive, `the server process did not exit (${String(server.exitCode ?? server.exitSignal ?? 'alive')})`)
  verify(stats !== null && stats.faults.uncaught === 0 && stats.faults.unhandled === 0, `0 uncaught exceptions, 0 unhandled rejections ${JSON.stringify(stats?.faults ?? null)}`)
  verify(unanswered.length === 0, `every readable id answered or its connection closed with a documented code (${unanswered.length} not: ${JSON.stringify(unanswered.slice(0, 5))})`)
  verify(totals.stalled === 0, `no open connection left a sentinel unanswered (${totals.stalled})`)
  verify(undocumented.size === 0, `no close with an undocumented code ${JSON.stringify(Object.fromEntries(undocumented))}`)
  verify(mismatched.length === 0, `every closing frame earned its documented code (${mismatched.join('; ')})`)
  verify(rawFailures.length === 0, `every raw scenario earned its close code and answers (${rawFailures.join('; ')})`)
  verify(Object.values(fresh).every(Boolean), `a fresh client is served afterwards on every profile ${JSON.stringify(fresh)}`)
  verify(Object.values(registries).every((r) => Object.values(r).every((n) => n === 0)), `registries back to zero ${JSON.stringify(registries)}`)
  verify(unexpectedLines.length === 0, `no error log line but the handlers' own (${lines.length} lines, ${unexpectedLines.length} unexpected: ${unexpectedLines.slice(0, 2).join(' | ')})`)
  return {
    seed,
    seconds,
    ...totals,
    closes: Object.fromEntries(closes),
    unanswered: unanswered.length,
    undocumentedCloses: Object.fromEntries(undocumented),
    mismatched,
    rawFailures,
    faults: stats?.faults,
    fresh,
    errorLogLines: lines.length,
    unexpectedErrorLogLines: unexpectedLines.length,
    protocolErrors: Object.fromEntries(Object.entries(stats?.routers ?? {}).map(([profile, r]) => [profile, r.stats.protocolErrors])),
    framesReceivedByServer: Object.fromEntries(Object.entries(stats?.routers ?? {}).map(([profile, r]) => [profile, r.stats.frames.received]))
  }
}

// ---------------------------------------------------------------------------
// Phase 4: shutdown

/**
 * One shutdown with `N_SHUTDOWN` clients, 1 in 10 stalled. `fastify` is
 * laid over Fastify's options: the run with Fastify's defaults shows that
 * `app.close()` rejects with avvio's AVV_ERR_READY_TIMEOUT when the
 * router's grace (10 s in production) reaches Fastify's `pluginTimeout`
 * (10 s by default); the second run raises `pluginTimeout` to 20 s.
 */
async function shutdownOnce (label: string, fastify: Record<string, unknown>, requireIt: boolean): Promise<Record<string, unknown>> {
  const stalledEvery = 10
  console.log(`\n# shutdown (${label}): ${N_SHUTDOWN} clients, 1 in ${stalledEvery} stalled`)
  // Buffers large enough that a stalled client stays connected (not closed with 1013) until the shutdown.
  const server = await ServerProcess.start({
    SOAK_PROFILES: 'default',
    SOAK_OPTIONS: JSON.stringify({ highWaterMarkBytes: 4 * MiB, maxBufferedBytes: 64 * MiB, maxConnectionsPerUser: 0 }),
    SOAK_FASTIFY: JSON.stringify(fastify)
  })
  const clients: Array<{ ws: WebSocket, id: string, stalled: boolean, close: Promise<number> }> = []
  await pool(0, N_SHUTDOWN, 50, async (i) => {
    const ws = new WebSocket(server.url('default'), { localAddress: source(i), perMessageDeflate: false })
    const close = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    ws.on('error', () => {})
    const id = await new Promise<string>((resolve, reject) => {
      ws.once('error', reject)
      ws.once('message', (data) => resolve((JSON.parse(data.toString()) as { payload: { connectionId: string } }).payload.connectionId))
    })
    clients[i] = { ws, id, stalled: i % stalledEvery === 0, close }
  })
  const stalled = clients.filter((c) => c.stalled)
  const readers = clients.filter((c) => !c.stalled)
  for (const client of stalled) {
    client.ws.send(JSON.stringify({ type: 'fill_me' }))
    ;(client.ws as unknown as { _socket: net.Socket })._socket.pause()
  }
  // Wait until the server holds bytes for every stalled client in its own buffer.
  const fillDeadline = Date.now() + 60_000
  let filled = 0
  while (Date.now() < fillDeadline) {
    filled = await server.request<number>({ cmd: 'buffered', profile: 'default', ids: stalled.map((c) => c.id), bytes: 256 * 1024 })
    if (filled === stalled.length) break
    await delay(500)
  }
  const graceMs = 10_000 // production preset
  const { closeMs, error } = await server.request<{ closeMs: number, error: string | null }>({ cmd: 'close', profile: 'default' })
  const readerCodes = await Promise.all(readers.map(async (c) => await Promise.race([c.close, delay(5000).then(() => -1)])))
  const codes = new Map<number, number>()
  for (const code of readerCodes) codes.set(code, (codes.get(code) ?? 0) + 1)
  for (const client of stalled) client.ws.terminate()
  console.log(`  close() ${error === null ? 'resolved' : `REJECTED (${error})`} after ${fmt(closeMs, 0)} ms (grace ${graceMs} ms); readers' close codes ${JSON.stringify(Object.fromEntries(codes))}`)
  const check = requireIt ? verify : (ok: boolean, what: string): void => { console.log(`${ok ? 'ok  ' : 'KNOWN'} ${what}`) }
  check(filled === stalled.length, `${filled}/${stalled.length} stalled clients have bytes stuck in the server's buffer`)
  check(readerCodes.every((code) => code === 1001), `every one of the ${readers.length} reading clients got 1001`)
  check(error === null && closeMs <= graceMs + 1000, `close() resolved within grace + 1 s (${error === null ? 'resolved' : 'rejected'} after ${fmt(closeMs, 0)} ms)`)
  await server.stop()
  return { label, fastify, clients: clients.length, stalled: stalled.length, filled, graceMs, closeMs, closeError: error, readerCodes: Object.fromEntries(codes) }
}

async function phaseShutdown (): Promise<Record<string, unknown>> {
  return {
    defaults: await shutdownOnce("Fastify's defaults", {}, false),
    pluginTimeout: await shutdownOnce('pluginTimeout 20 s', { pluginTimeout: 20_000 }, true)
  }
}

// ---------------------------------------------------------------------------
// Run and record

/** The commit the run measured, marked when the tree had uncommitted changes. */
function gitCommit (): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head} (with uncommitted changes)` : head
  } catch {
    return 'unknown'
  }
}

const results: Record<string, unknown> = {}
const runStarted = new Date()
const machine = { nproc: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version, loadavgAtStart: loadavg() }
console.log(`soak: scale ${scale}, phases ${[...phases].join(',')}, seed ${seed}; ${machine.nproc} cores (${machine.cpuModel}), node ${machine.node}, load ${machine.loadavgAtStart.map((l) => fmt(l, 2)).join(' ')}`)
if (phases.has('connections')) results.connections = await phaseConnections()
if (phases.has('churn')) results.churn = await phaseChurn()
if (phases.has('hostile')) results.hostile = await phaseHostile()
if (phases.has('shutdown')) results.shutdown = await phaseShutdown()
const totalSeconds = (Date.now() - runStarted.getTime()) / 1000
console.log(`\nsoak: ${fmt(totalSeconds, 0)} s, ${failures.length} requirement(s) failed`)

if (record) {
  const stamp = runStarted.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')
  const file = join(root, 'bench', 'results', `soak-${stamp}.json`)
  const summary = { startedAt: runStarted.toISOString(), commit: gitCommit(), totalSeconds, scale, seed, machine, loadavgAtEnd: loadavg(), failures, results }
  writeFileSync(file, JSON.stringify(summary, null, 2) + '\n')
  const { renderReliability } = await import('./soak/report.js')
  const docs = join(root, 'docs', 'reliability.md')
  writeFileSync(docs, renderReliability(readFileSync(docs, 'utf8'), summary, `bench/results/soak-${stamp}.json`))
  console.log(`recorded: ${file} and docs/reliability.md`)
}
process.exit(failures.length === 0 ? 0 : 1)
