/**
 * The benchmark harness: `npm run bench` (full, about 30 minutes on 2 cores)
 * or `npm run bench -- --quick` (under a minute). See docs/performance.md.
 *
 * Throughput and latency: each scenario runs every target in turn
 * (A B C … A B C …) for a number of rounds; medians with min–max.
 * Memory: bytes per idle connection. Churn: heap growth over many
 * connect / one message / close cycles.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { relative } from 'node:path'
import { availableParallelism, cpus, loadavg, totalmem, type } from 'node:os'
import { createHistogram, performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  ALL_SCENARIOS, MODES, SERVERS, TARGETS, endpointOf, requestOf,
  type Mode, type Scenario, type TargetSpec
} from './harness/config.js'
import type { ChurnReply, CloseReply, CollectReply, ConnectReply, Endpoint, RequestSpec } from './harness/messages.js'
import { LoadPool, split } from './harness/pool.js'
import { renderMarkdown, summarise, evaluateChecks } from './harness/report.js'
import { renderChart } from './harness/chart.js'
import type { ChurnProbe, LoadRun, Machine, MemoryProbe, Results } from './harness/results.js'
import { ServerProcess, type LaunchOptions, type ServerName } from './harness/servers.js'

const repoRoot = fileURLToPath(new URL('../', import.meta.url))

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    measure: { type: 'string' },
    scenarios: { type: 'string' },
    targets: { type: 'string' },
    'memory-connections': { type: 'string' },
    'memory-servers': { type: 'string' },
    'churn-cycles': { type: 'string' },
    'churn-servers': { type: 'string' },
    'skip-load': { type: 'boolean', default: false },
    'skip-memory': { type: 'boolean', default: false },
    'skip-churn': { type: 'boolean', default: false },
    'heap-snapshots': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    plugin: { type: 'string', default: 'lib' },
    baseline: { type: 'string' },
    workers: { type: 'string' },
    'cpu-prof': { type: 'string' },
    out: { type: 'string' },
    label: { type: 'string' },
    svg: { type: 'string' },
    render: { type: 'string' },
    help: { type: 'boolean', default: false }
  },
  strict: true
})

if (args.help) {
  console.log(`npm run bench -- [options]
  --quick                 a short subset (under a minute)
  --rounds N              rounds of every target per scenario (full: 3)
  --warmup S / --measure S   seconds of warm-up / measurement per run (full: 2 / 5)
  --scenarios a,b         scenario ids: ${ALL_SCENARIOS.map((s) => s.id).join(', ')}
  --targets a,b           target ids: ${TARGETS.map((t) => t.id).join(', ')}
  --memory-connections N  idle connections of the memory probe (full: 5000)
  --memory-servers a,b / --churn-servers a,b   servers probed (${Object.keys(SERVERS).join(', ')})
  --churn-cycles N        connect / message / close cycles (full: 20000)
  --skip-load --skip-memory --skip-churn
  --heap-snapshots        memory probe: also write V8 heap snapshots (idle and loaded) to bench/results/heap/
                          (compare with: npx tsx bench/heap-diff.ts IDLE LOADED CONNECTIONS)
  --no-pin                do not pin client and servers to separate cores
  --plugin lib|dist|DIR   run the plugin servers from the TypeScript sources (lib, default), as
                          published, compiled into dist/ by \`npm run build\` (dist; build first), or
                          from a copy of such a build in DIR (safe from a rebuild during the run)
  --baseline DIR          the targets baseline-ping, baseline-user_message run the tsc build in DIR
                          (an earlier commit's dist/ directory) beside the current one, round by round
  --workers N             load-generator worker threads (default: cores given to the client)
  --cpu-prof a,b          write V8 CPU profiles of these servers to bench/results/profiles/
  --out DIR               results directory (default bench/results)
  --label NAME            results file prefix (default: the mode, full or quick)
  --svg FILE              chart file (full: docs/benchmark-ratios.svg; quick: bench/results/quick-ratios.svg)
  --render FILE.json      measure nothing: rewrite FILE.md and the chart from a results file`)
  process.exit(0)
}

if (args.render !== undefined) {
  const saved = JSON.parse(readFileSync(args.render, 'utf8')) as Results
  saved.checks = evaluateChecks(saved)
  const svg = args.svg ?? (saved.mode === 'full' ? `${repoRoot}docs/benchmark-ratios.svg` : `${repoRoot}bench/results/quick-ratios.svg`)
  writeFileSync(svg, renderChart(saved, relative(repoRoot, args.render)))
  const markdown = renderMarkdown(saved)
  writeFileSync(args.render.replace(/\.json$/, '.md'), markdown)
  console.log(markdown)
  console.log(`chart: ${svg}`)
  process.exit(0)
}

function list (value: string | undefined): string[] | undefined {
  return value?.split(',').map((s) => s.trim()).filter((s) => s !== '')
}

function number (value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`)
  return n
}

const base = MODES[args.quick ? 'quick' : 'full']
const mode: Mode = {
  ...base,
  rounds: number(args.rounds, 'rounds') ?? base.rounds,
  warmupMs: (number(args.warmup, 'warmup') ?? base.warmupMs / 1000) * 1000,
  measureMs: (number(args.measure, 'measure') ?? base.measureMs / 1000) * 1000,
  scenarios: list(args.scenarios) ?? base.scenarios,
  targets: list(args.targets) ?? base.targets,
  memoryConnections: number(args['memory-connections'], 'memory-connections') ?? base.memoryConnections,
  memoryServers: (list(args['memory-servers']) as ServerName[] | undefined) ?? base.memoryServers,
  churnCycles: number(args['churn-cycles'], 'churn-cycles') ?? base.churnCycles,
  churnServers: (list(args['churn-servers']) as ServerName[] | undefined) ?? base.churnServers
}

const scenarios: Scenario[] = mode.scenarios.map((id) => {
  const found = ALL_SCENARIOS.find((s) => s.id === id)
  if (found === undefined) throw new Error(`unknown scenario ${id}`)
  return found
})
const targets: TargetSpec[] = mode.targets.map((id) => {
  const found = TARGETS.find((t) => t.id === id)
  if (found === undefined) throw new Error(`unknown target ${id}`)
  return found
})
for (const name of [...mode.memoryServers, ...mode.churnServers]) {
  if (!(name in SERVERS)) throw new Error(`unknown server ${name}`)
}
if (args.plugin === 'dist' && !existsSync(`${repoRoot}dist/lib/index.js`)) throw new Error('--plugin dist: run `npm run build` first')
if (args.plugin !== 'lib' && args.plugin !== 'dist' && !existsSync(`${args.plugin}/lib/index.js`)) throw new Error(`--plugin ${args.plugin}: not lib, dist, or a directory holding a tsc build (lib/index.js)`)
// The plugin servers read it (bench/servers/plugin-app.ts); child processes inherit the environment.
process.env.WSR_BENCH_PLUGIN = args.plugin
if (args.baseline !== undefined) {
  if (!existsSync(`${args.baseline}/lib/index.js`)) throw new Error(`--baseline ${args.baseline}: no lib/index.js there (a tsc build of an earlier commit)`)
  process.env.WSR_BENCH_BASELINE = args.baseline
}
const profiled = new Set(list(args['cpu-prof']) ?? [])
const outDir = args.out ?? `${repoRoot}bench/results`
const svgPath = args.svg ?? (mode.name === 'full' ? `${repoRoot}docs/benchmark-ratios.svg` : `${outDir}/quick-ratios.svg`)

// ---- machine and pinning ----

function hasTaskset (): boolean {
  return spawnSync('taskset', ['-V'], { stdio: 'ignore' }).status === 0
}

const nproc = availableParallelism()
const pin = !args['no-pin'] && nproc >= 2 && hasTaskset()
const clientCores = pin ? '0' : null
const serverCores = pin ? (nproc > 2 ? `1-${nproc - 1}` : '1') : null
if (pin) {
  // Pin every thread of this process (and so the worker threads it starts
  // later) to core 0; servers run on the other core(s).
  execFileSync('taskset', ['-a', '-p', '-c', clientCores as string, String(process.pid)], { stdio: 'ignore' })
}
const workerCount = number(args.workers, 'workers') ?? (pin ? 1 : Math.max(1, nproc - 1))

function cpuModel (): string {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (match?.[1] !== undefined) return match[1].trim()
  } catch {}
  return cpus()[0]?.model ?? 'unknown'
}

function fdLimit (): string {
  const soft = spawnSync('/bin/sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).stdout.trim()
  const hard = spawnSync('/bin/sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim()
  return `${soft} (hard ${hard})`
}

function git (...gitArgs: string[]): string {
  const result = spawnSync('git', gitArgs, { cwd: repoRoot, encoding: 'utf8' })
  return result.status === 0 ? result.stdout.trim() : ''
}

/** The code measured: the commit, and whether lib/ or plugins/ differ from it (work in progress). */
const source = {
  commit: git('rev-parse', '--short', 'HEAD'),
  uncommitted: git('status', '--porcelain', '--', 'lib', 'plugins').split('\n').filter((line) => line !== '').map((line) => line.slice(3))
}

const machine: Machine = {
  cpuModel: cpuModel(),
  nproc,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  os: type(),
  pinning: pin ? { client: clientCores as string, server: serverCores as string } : null,
  loadWorkers: workerCount,
  fdLimit: fdLimit(),
  loadAverage: { start: loadavg().map((n) => Math.round(n * 100) / 100), end: [] }
}

// The client holds every connection of the memory probe at once.
const softFd = Number(spawnSync('/bin/sh', ['-c', 'ulimit -Sn'], { encoding: 'utf8' }).stdout.trim())
if (Number.isFinite(softFd) && softFd < mode.memoryConnections + 200) {
  console.warn(`warning: ulimit -n is ${softFd}; the memory probe needs ${mode.memoryConnections + 200} descriptors in the client. Raise it (ulimit -n 65536) or pass --memory-connections.`)
}

const log = (line: string): void => { console.log(line) }

/** What each server reported about itself (the plugin: the options it ran with). */
const serverInfo: Record<string, unknown> = {}

async function startServer (name: ServerName): Promise<ServerProcess> {
  const options: LaunchOptions = {
    cores: serverCores,
    cpuProfileDir: profiled.has(name) ? `${outDir}/profiles` : undefined,
    logFile: `${outDir}/logs/${name}.log`
  }
  const server = await ServerProcess.start(name, options)
  if (server.info !== undefined && !(name in serverInfo)) {
    serverInfo[name] = server.info
    const unknown = (server.info as { unknownOptions?: string[] }).unknownOptions ?? []
    if (unknown.length > 0) log(`  note: ${name}: the plugin does not know ${unknown.join(', ')} yet; run without`)
  }
  return server
}

// ---- throughput and latency ----

const CONNECT_CONCURRENCY = 64

function cpuMicros (usage: NodeJS.CpuUsage): number {
  return usage.user + usage.system
}

async function loadRun (pool: LoadPool, server: ServerProcess, target: TargetSpec, scenario: Scenario, round: number): Promise<LoadRun> {
  const endpoint = endpointOf(SERVERS[target.server], server.port)
  const request = requestOf(target, scenario.payloadBytes)
  const shares = split(scenario.connections, pool.size)
  const connected = await pool.all<ConnectReply>((i) => ({ cmd: 'connect', endpoint, count: shares[i] as number, concurrency: CONNECT_CONCURRENCY }))
  const connectFailed = connected.reduce((n, r) => n + r.failed, 0)
  const connectMs = Math.max(...connected.map((r) => r.ms))
  if (connectFailed > 0) log(`  ! ${connectFailed} connections failed: ${connected.find((r) => r.firstError)?.firstError ?? ''}`)
  await pool.all({ cmd: 'start', request, window: scenario.window })
  await sleep(mode.warmupMs)

  const [serverBefore] = await Promise.all([server.usage(), pool.all({ cmd: 'mark' })])
  const clientBefore = process.cpuUsage()
  const wallBefore = performance.now()
  await sleep(mode.measureMs)
  const [serverAfter, collected] = await Promise.all([server.usage(), pool.all<CollectReply>({ cmd: 'collect' })])
  const clientCpu = cpuMicros(process.cpuUsage(clientBefore))
  const wall = performance.now() - wallBefore
  await pool.all({ cmd: 'stop' })
  const closed = await pool.all<CloseReply>({ cmd: 'close' })

  const histogram = createHistogram()
  let replies = 0
  let badReplies = 0
  let dropped = 0
  let elapsedMs = 0
  for (const part of collected) {
    histogram.add(part.histogram)
    replies += part.replies
    badReplies += part.badReplies
    dropped += part.dropped
    elapsedMs = Math.max(elapsedMs, part.elapsedMs)
  }
  const serverCpu = cpuMicros(serverAfter.cpu) - cpuMicros(serverBefore.cpu)
  const serverWallMs = serverAfter.wallMs - serverBefore.wallMs
  const ms = (micros: number): number => micros / 1000
  return {
    scenario: scenario.id,
    target: target.id,
    round,
    connections: scenario.connections,
    connectFailed,
    connectMs,
    closeMs: Math.max(...closed.map((r) => r.ms)),
    replies,
    badReplies,
    dropped,
    elapsedMs,
    repliesPerSec: replies / (elapsedMs / 1000),
    latencyMs: {
      p50: ms(histogram.percentile(50)),
      p90: ms(histogram.percentile(90)),
      p99: ms(histogram.percentile(99)),
      max: ms(histogram.max),
      mean: ms(histogram.mean)
    },
    serverCpuUsPerReply: replies > 0 ? serverCpu / replies : Number.NaN,
    serverCpuPct: serverCpu / (serverWallMs * 1000) * 100,
    serverHeapMiB: serverAfter.memory.heapUsed / 2 ** 20,
    clientCpuPct: clientCpu / (wall * 1000) * 100
  }
}

async function loadPhase (pool: LoadPool): Promise<LoadRun[]> {
  const names = [...new Set(targets.map((t) => t.server))]
  log(`starting servers: ${names.join(', ')}`)
  const servers = new Map<ServerName, ServerProcess>()
  const started = await Promise.allSettled(names.map(startServer))
  for (const outcome of started) {
    if (outcome.status === 'fulfilled') servers.set(outcome.value.name, outcome.value)
  }
  const failed = started.find((outcome) => outcome.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all([...servers.values()].map((server) => server.stop()))
    throw (failed as PromiseRejectedResult).reason
  }
  const runs: LoadRun[] = []
  try {
    for (const scenario of scenarios) {
      for (let round = 1; round <= mode.rounds; round++) {
        // Targets alternate within each round (A B C … A B C …), so that a
        // drift of the machine's speed touches every target alike.
        for (const target of targets) {
          const run = await loadRun(pool, servers.get(target.server) as ServerProcess, target, scenario, round)
          runs.push(run)
          const flags = (run.badReplies > 0 ? ` BAD REPLIES ${run.badReplies}` : '') + (run.dropped > 0 ? ` dropped ${run.dropped}` : '')
          log(`  ${scenario.label.padEnd(18)} r${round} ${target.id.padEnd(26)} ${run.repliesPerSec.toFixed(0).padStart(7)}/s  p99 ${run.latencyMs.p99.toFixed(2).padStart(7)} ms  server ${run.serverCpuUsPerReply.toFixed(1).padStart(6)} µs/reply (${run.serverCpuPct.toFixed(0)}% cpu, heap ${run.serverHeapMiB.toFixed(0)} MiB)  client ${run.clientCpuPct.toFixed(0)}%  (open ${run.connectMs.toFixed(0)} ms, close ${run.closeMs.toFixed(0)} ms)${flags}`)
          await sleep(200)
        }
      }
    }
  } finally {
    await Promise.all([...servers.values()].map((server) => server.stop()))
  }
  return runs
}

// ---- memory per idle connection ----

async function connectAll (pool: LoadPool, endpoint: Endpoint, count: number): Promise<{ opened: number, failed: number, firstError?: string | undefined }> {
  const shares = split(count, pool.size)
  const replies = await pool.all<ConnectReply>((i) => ({ cmd: 'connect', endpoint, count: shares[i] as number, concurrency: CONNECT_CONCURRENCY }))
  return {
    opened: replies.reduce((n, r) => n + r.opened, 0),
    failed: replies.reduce((n, r) => n + r.failed, 0),
    firstError: replies.find((r) => r.firstError !== undefined)?.firstError
  }
}

async function memoryProbe (pool: LoadPool, name: ServerName): Promise<MemoryProbe> {
  const server = await startServer(name)
  try {
    const endpoint = endpointOf(SERVERS[name], server.port)
    // Warm up: lazily created structures and compiled code are not per-connection costs.
    await connectAll(pool, endpoint, 200)
    await pool.all({ cmd: 'close' })
    await sleep(500)
    const snapshots = args['heap-snapshots'] ? `${outDir}/heap` : undefined
    if (snapshots !== undefined) mkdirSync(snapshots, { recursive: true })
    const before = snapshots === undefined ? await server.gc() : await server.heapSnapshot(`${snapshots}/${name}-idle.heapsnapshot`)
    const opened = await connectAll(pool, endpoint, mode.memoryConnections)
    await sleep(1000)
    const loaded = snapshots === undefined ? await server.gc() : await server.heapSnapshot(`${snapshots}/${name}-loaded-${opened.opened}.heapsnapshot`)
    await pool.all({ cmd: 'close' })
    await sleep(500)
    const afterClose = await server.gc()
    const per = (key: keyof NodeJS.MemoryUsage): number => (loaded.memory[key] - before.memory[key]) / opened.opened
    return {
      server: name,
      connections: mode.memoryConnections,
      opened: opened.opened,
      failed: opened.failed,
      firstError: opened.firstError,
      bytesPerConnection: { rss: per('rss'), heapUsed: per('heapUsed'), external: per('external'), arrayBuffers: per('arrayBuffers') },
      before: before.memory,
      loaded: loaded.memory,
      afterClose: afterClose.memory,
      connectionsSeenByServer: loaded.connections
    }
  } finally {
    await server.stop()
  }
}

// ---- churn ----

async function churnCycles (pool: LoadPool, endpoint: Endpoint, request: RequestSpec, cycles: number): Promise<{ ok: number, failed: number, firstError?: string | undefined, ms: number }> {
  const shares = split(cycles, pool.size)
  const lanes = split(mode.churnConcurrency, pool.size)
  let first = 0
  const firsts = shares.map((n) => { const at = first; first += n; return at })
  const started = performance.now()
  const replies = await pool.all<ChurnReply>((i) => ({
    cmd: 'churn', endpoint, request, cycles: shares[i] as number, concurrency: Math.max(1, lanes[i] as number), firstIndex: firsts[i] as number
  }))
  return {
    ok: replies.reduce((n, r) => n + r.ok, 0),
    failed: replies.reduce((n, r) => n + r.failed, 0),
    firstError: replies.find((r) => r.firstError !== undefined)?.firstError,
    ms: performance.now() - started
  }
}

async function drained (server: ServerProcess): Promise<number> {
  const deadline = performance.now() + 20_000
  let usage = await server.usage()
  while (usage.connections > 0 && performance.now() < deadline) {
    await sleep(100)
    usage = await server.usage()
  }
  return usage.connections
}

interface PluginStats {
  connectionCount: number
  stats: { connections: { open: number, total: number, closedByCode: Record<string, number> }, users?: number, rooms?: number }
}

async function churnProbe (pool: LoadPool, name: ServerName): Promise<ChurnProbe> {
  const server = await startServer(name)
  try {
    const spec = SERVERS[name]
    const endpoint = endpointOf(spec, server.port)
    const target = TARGETS.find((t) => t.server === name && t.kind === 'ping') ?? TARGETS.find((t) => t.server === name) as TargetSpec
    const request = requestOf(target, 64)
    await churnCycles(pool, endpoint, request, Math.min(1000, mode.churnCycles))
    await drained(server)
    const before = await server.gc()
    const result = await churnCycles(pool, endpoint, request, mode.churnCycles)
    const connectionsAfter = await drained(server)
    await sleep(200)
    const after = await server.gc()
    let registries: ChurnProbe['registries']
    if (name === 'plugin' || name === 'plugin-lifecycle') {
      const { stats } = await server.stats() as { stats: PluginStats }
      registries = {
        connectionCount: stats.connectionCount,
        open: stats.stats.connections.open,
        total: stats.stats.connections.total,
        closedByCode: stats.stats.connections.closedByCode,
        users: stats.stats.users,
        rooms: stats.stats.rooms
      }
    }
    return {
      server: name,
      cycles: mode.churnCycles,
      concurrency: mode.churnConcurrency,
      ok: result.ok,
      failed: result.failed,
      firstError: result.firstError,
      ms: result.ms,
      heapBefore: before.memory.heapUsed,
      heapAfter: after.memory.heapUsed,
      heapGrowth: after.memory.heapUsed - before.memory.heapUsed,
      rssBefore: before.memory.rss,
      rssAfter: after.memory.rss,
      connectionsAfter,
      registries
    }
  } finally {
    await server.stop()
  }
}

// ---- main ----

const startedAt = new Date()
const startedWall = performance.now()
log(`fastify-ws-router benchmark, ${mode.name} mode — ${machine.cpuModel}, ${nproc} cores, node ${machine.node}`)
log(pin ? `pinned: client (this process, ${workerCount} load worker(s)) on core ${clientCores}, servers on core ${serverCores}` : `not pinned; ${workerCount} load worker(s)`)
log(`${scenarios.length} scenarios × ${targets.length} targets × ${mode.rounds} rounds, ${mode.warmupMs / 1000} s warm-up + ${mode.measureMs / 1000} s measured each`)

const pool = new LoadPool(workerCount)
const runs: LoadRun[] = []
const memory: MemoryProbe[] = []
const churn: ChurnProbe[] = []
try {
  if (!args['skip-load'] && scenarios.length > 0 && targets.length > 0) {
    log('\n== throughput and latency ==')
    runs.push(...await loadPhase(pool))
  }
  if (!args['skip-memory']) {
    log(`\n== memory: ${mode.memoryConnections} idle connections ==`)
    for (const name of mode.memoryServers) {
      const probe = await memoryProbe(pool, name)
      memory.push(probe)
      log(`  ${name.padEnd(18)} ${probe.opened} open (${probe.failed} failed)  RSS ${(probe.bytesPerConnection.rss / 1024).toFixed(2)} KiB/conn  heap ${(probe.bytesPerConnection.heapUsed / 1024).toFixed(2)} KiB/conn`)
    }
  }
  if (!args['skip-churn']) {
    log(`\n== churn: ${mode.churnCycles} connect / message / close cycles, concurrency ${mode.churnConcurrency}, half abrupt ==`)
    for (const name of mode.churnServers) {
      const probe = await churnProbe(pool, name)
      churn.push(probe)
      const registries = probe.registries === undefined ? '' : `  registries: connectionCount ${probe.registries.connectionCount}, open ${probe.registries.open}`
      log(`  ${name.padEnd(18)} ${probe.ok} ok, ${probe.failed} failed in ${(probe.ms / 1000).toFixed(1)} s  heap ${(probe.heapGrowth / 1024).toFixed(1)} KiB growth  open after ${probe.connectionsAfter}${registries}`)
    }
  }
} finally {
  await pool.close()
}

machine.loadAverage.end = loadavg().map((n) => Math.round(n * 100) / 100)
const summaries = summarise(runs)
const results: Results = {
  mode: mode.name,
  startedAt: startedAt.toISOString(),
  durationSec: Math.round((performance.now() - startedWall) / 1000),
  command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
  settings: {
    rounds: mode.rounds,
    warmupMs: mode.warmupMs,
    measureMs: mode.measureMs,
    scenarios: scenarios.map((s) => s.id),
    targets: targets.map((t) => t.id),
    memoryConnections: mode.memoryConnections,
    churnCycles: mode.churnCycles,
    churnConcurrency: mode.churnConcurrency
  },
  machine,
  source,
  servers: serverInfo,
  runs,
  summaries,
  memory,
  churn,
  checks: []
}
results.checks = evaluateChecks(results)

mkdirSync(outDir, { recursive: true })
const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d\d\dZ$/, 'Z')
const baseName = `${outDir}/${args.label ?? mode.name}-${stamp}`
const markdown = renderMarkdown(results)
writeFileSync(`${baseName}.json`, JSON.stringify(results, null, 2) + '\n')
writeFileSync(`${baseName}.md`, markdown)
if (summaries.length > 0) writeFileSync(svgPath, renderChart(results, relative(repoRoot, `${baseName}.json`)))

log('\n' + markdown)
log(`results: ${baseName}.json, ${baseName}.md${summaries.length > 0 ? `; chart: ${svgPath}` : ''}`)
log(`duration: ${results.durationSec} s; server logs (pino, level warn): ${outDir}/logs/`)
if (profiled.size > 0) log(`CPU profiles: ${outDir}/profiles/ (summarise with: npx tsx bench/profile.ts FILE)`)
