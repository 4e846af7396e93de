/**
 * Cross-instance room fan-out: one Redis node against a 3-shard Redis Cluster
 * (issue 15).
 *
 *   npx tsx bench/cross-instance-cluster.ts [--quick]     (npm run bench:cluster)
 *
 * Starts its own redis-server and its own cluster (3 masters, 1 replica each,
 * persistence off; test/helpers/redis-cluster.ts), and two plugin instances
 * (bench/cross-instance/plugin-instance.ts, as bench:cross) on each. ROOMS rooms, spread over the three
 * shards; per room one sender on instance A and one receiver on instance B.
 * Every room keeps WINDOW messages outstanding (each receipt sends the next)
 * for DURATION_MS; the figure is delivered messages per second over all
 * rooms, with the latency of each message (send to receipt, one clock).
 * Writes its section of docs/performance-cross-instance.md.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createHistogram, performance } from 'node:perf_hooks'
import { connect, type TestClient } from '../test/helpers/client.js'
import { inRoom, spawnInstance, type Instance } from '../test/helpers/instances.js'
import { startRedis, type TestRedis } from '../test/helpers/redis.js'
import { startRedisCluster, type TestCluster } from '../test/helpers/redis-cluster.js'
import { delay } from '../test/helpers/wait.js'

const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 1 : 3
const ROOMS = 48
const WINDOW = 4 // outstanding messages per room
const DURATION_MS = quick ? 3000 : 10_000
const WARMUP_MS = 1000
const DRAIN_MS = 2000

const root = fileURLToPath(new URL('..', import.meta.url))
const docPath = join(root, 'docs', 'performance-cross-instance.md')
const pluginInstance = join(root, 'bench', 'cross-instance', 'plugin-instance.ts')
const SECTION = '## Redis Cluster against one Redis node'

interface Setup { key: string, label: string, a: Instance, b: Instance }
interface RoomPair { room: string, sender: TestClient, receiver: TestClient }
interface RunResult { perSecond: number, p50: number, p99: number, sent: number, received: number }

async function pairs (setup: Setup, rooms: string[]): Promise<RoomPair[]> {
  const result: RoomPair[] = []
  for (const room of rooms) {
    const sender = await connect(`${setup.a.url}?user=s-${room}`)
    const receiver = await connect(`${setup.b.url}?user=r-${room}`)
    await inRoom(receiver, room)
    result.push({ room, sender, receiver })
  }
  await delay(300) // subscriptions settle asynchronously
  return result
}

/** Every room keeps WINDOW messages in flight; returns delivered/s and latency over the measured part. */
async function run (roomPairs: RoomPair[], durationMs: number): Promise<RunResult> {
  const histogram = createHistogram()
  const count = { sent: 0, received: 0, stop: false }
  const started = performance.now()
  for (const { room, sender, receiver } of roomPairs) {
    const send = (): void => {
      count.sent++
      sender.send({ type: 'say', payload: { room, seq: count.sent, t: performance.now() } })
    }
    receiver.ws.removeAllListeners('message')
    receiver.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as { type: string, payload: { t: number } }
      if (frame.type !== 'heard') return
      count.received++
      histogram.record(Math.max(1, Math.round((performance.now() - frame.payload.t) * 1e6)))
      if (!count.stop) send()
    })
    for (let i = 0; i < WINDOW; i++) send()
  }
  await delay(durationMs)
  count.stop = true
  const elapsed = performance.now() - started
  const deliveredInTime = count.received
  const drainUntil = Date.now() + DRAIN_MS
  while (count.received < count.sent && Date.now() < drainUntil) await delay(10)
  return { perSecond: deliveredInTime / (elapsed / 1000), p50: histogram.percentile(50) / 1e3, p99: histogram.percentile(99) / 1e3, sent: count.sent, received: count.received }
}

/** SPUBLISH calls per master, from INFO commandstats. */
async function spublishPerMaster (cluster: TestCluster): Promise<Map<number, number>> {
  const counts = new Map<number, number>()
  for (const node of (await cluster.nodes()).filter((n) => n.role === 'master')) {
    const stats = await cluster.cli(node.port, 'info', 'commandstats')
    counts.set(node.port, Number(/cmdstat_spublish:calls=(\d+)/.exec(stats)?.[1] ?? 0))
  }
  return counts
}

function median (values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

function cell (values: number[]): string {
  const fmt = (v: number): string => v.toLocaleString('en-US', { maximumFractionDigits: 0 })
  return values.length === 1 ? fmt(values[0] as number) : `${fmt(median(values))} (${fmt(Math.min(...values))}–${fmt(Math.max(...values))})`
}

async function main (): Promise<void> {
  const startedAt = new Date()
  const loadBefore = loadavg()
  const cleanups: Array<() => Promise<void>> = []
  try {
    const redis: TestRedis = await startRedis()
    cleanups.push(redis.close)
    const cluster = await startRedisCluster()
    cleanups.push(cluster.close)
    const start = async (env: Record<string, string>, id: string): Promise<Instance> => {
      const instance = await spawnInstance({ ...env, INSTANCE_ID: id }, pluginInstance)
      cleanups.unshift(instance.stop)
      return instance
    }
    const single = { REDIS_URL: redis.url }
    const sharded = { REDIS_CLUSTER_NODES: cluster.seeds.join(',') }
    const setups: Setup[] = [
      { key: 'single', label: 'one Redis node (PUBLISH)', a: await start(single, 'single-a'), b: await start(single, 'single-b') },
      { key: 'cluster', label: 'Redis Cluster, 3 masters + 3 replicas (SPUBLISH)', a: await start(sharded, 'cluster-a'), b: await start(sharded, 'cluster-b') }
    ]

    const rooms = Array.from({ length: ROOMS }, (_, i) => `bench-${i}`)
    const roomsPerMaster = new Map<number, number>()
    for (const room of rooms) {
      const master = await cluster.masterOf(await cluster.keyslot(`wsr:r:{${room}}`))
      roomsPerMaster.set(master.port, (roomsPerMaster.get(master.port) ?? 0) + 1)
    }
    const spread = [...roomsPerMaster.values()].sort((x, y) => y - x).join(' / ')
    console.error(`${ROOMS} rooms over the masters: ${spread}`)

    const connected = new Map<string, RoomPair[]>()
    for (const setup of setups) connected.set(setup.key, await pairs(setup, rooms))
    const results = new Map<string, RunResult[]>(setups.map((s) => [s.key, []]))
    const publishesBefore = await spublishPerMaster(cluster)
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? setups : [...setups].reverse()
      for (const setup of order) {
        const roomPairs = connected.get(setup.key) as RoomPair[]
        await run(roomPairs, WARMUP_MS)
        const result = await run(roomPairs, DURATION_MS)
        results.get(setup.key)?.push(result)
        console.error(`round ${round + 1}/${ROUNDS} ${setup.label}: ${result.perSecond.toFixed(0)} msg/s, p50 ${result.p50.toFixed(0)} µs, p99 ${result.p99.toFixed(0)} µs, ${result.received}/${result.sent}`)
      }
    }
    const publishesAfter = await spublishPerMaster(cluster)
    const share = [...publishesAfter].map(([port, calls]) => calls - (publishesBefore.get(port) ?? 0)).sort((x, y) => y - x)
    const total = share.reduce((sum, n) => sum + n, 0)
    const shareText = share.map((n) => `${(100 * n / Math.max(1, total)).toFixed(0)} %`).join(' / ')
    for (const pairList of connected.values()) for (const p of pairList) { p.sender.ws.terminate(); p.receiver.ws.terminate() }

    const rows = setups.map((s) => {
      const r = results.get(s.key) ?? []
      const lost = r.map((x) => x.sent - x.received)
      return `| ${s.label} | ${cell(r.map((x) => x.perSecond))} | ${cell(r.map((x) => x.p50))} | ${cell(r.map((x) => x.p99))} | ${lost.every((l) => l === 0) ? '0' : lost.join(' / ')} |`
    })
    const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(' / ')
    const section = `${SECTION}

Generated by \`bench/cross-instance-cluster.ts\`; do not edit the figures by hand.

- Command: \`npx tsx bench/cross-instance-cluster.ts${quick ? ' --quick' : ''}\` (\`npm run bench:cluster\`)
- Date: ${startedAt.toISOString()}
- Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? 'unknown'}; node ${process.version}
- Load average (1 / 5 / 15 min) at start: ${load(loadBefore)}; at end: ${load(loadavg())}
- Rounds: ${ROUNDS}, order alternated; cells are median (min–max) over rounds

Method: two plugin instances (\`bench/cross-instance/plugin-instance.ts\`) per setup, all
four running for the whole benchmark, with the single redis-server and the
six cluster nodes on the same ${cpus().length} cores as the client process. ${ROOMS} rooms;
their slots fall on the three masters ${spread}. Per room, one sender on
instance A and one receiver on instance B; each room keeps ${WINDOW} messages in
flight (a receipt sends the next), ${DURATION_MS / 1000} s per run after ${WARMUP_MS / 1000} s of warm-up.
Delivered msg/s counts receipts over all rooms; latency is send to receipt
on one clock. The cluster's SPUBLISH calls over the runs, per master:
${shareText}.

| Setup | delivered msg/s | p50 µs | p99 µs | lost |
|---|---:|---:|---:|---:|
${rows.join('\n')}
`
    console.log(section)
    const doc = readFileSync(docPath, 'utf8')
    const at = doc.indexOf(SECTION)
    writeFileSync(docPath, at === -1 ? `${doc.trimEnd()}\n\n${section}` : `${doc.slice(0, at)}${section}`)
    console.error('wrote its section of docs/performance-cross-instance.md')
  } finally {
    for (const cleanup of cleanups) await cleanup().catch(() => {})
  }
}

await main()
