/** The shape of `bench/results/*.json`. */
import type { Spread } from './stats.js'

export interface Machine {
  cpuModel: string
  nproc: number
  memoryGiB: number
  node: string
  os: string
  /** `taskset` cores of the harness (client) and of the servers, or null when not pinned. */
  pinning: { client: string, server: string } | null
  loadWorkers: number
  fdLimit: string
  /** 1-minute load average when the run started and ended (other work on the machine). */
  loadAverage: { start: number[], end: number[] }
}

export interface LoadRun {
  scenario: string
  target: string
  round: number
  connections: number
  connectFailed: number
  /** Time to open (ramped) and to close the connections, ms. */
  connectMs: number
  closeMs: number
  replies: number
  badReplies: number
  dropped: number
  elapsedMs: number
  repliesPerSec: number
  latencyMs: { p50: number, p90: number, p99: number, max: number, mean: number }
  serverCpuUsPerReply: number
  /** Server CPU time over wall time, % of one core. */
  serverCpuPct: number
  /** The server's `heapUsed` at the end of the window (not after GC), MiB. */
  serverHeapMiB: number
  /** Harness (client) CPU time over wall time, % of one core. */
  clientCpuPct: number
}

export interface LoadSummary {
  scenario: string
  target: string
  rounds: number
  repliesPerSec: Spread
  p50: Spread
  p90: Spread
  p99: Spread
  max: Spread
  serverCpuUsPerReply: Spread
  serverCpuPct: Spread
  clientCpuPct: Spread
  badReplies: number
  dropped: number
  connectFailed: number
}

export interface MemoryProbe {
  server: string
  connections: number
  opened: number
  failed: number
  firstError?: string | undefined
  bytesPerConnection: { rss: number, heapUsed: number, external: number, arrayBuffers: number }
  before: NodeJS.MemoryUsage
  loaded: NodeJS.MemoryUsage
  afterClose: NodeJS.MemoryUsage
  connectionsSeenByServer: number
}

export interface ChurnProbe {
  server: string
  cycles: number
  concurrency: number
  ok: number
  failed: number
  firstError?: string | undefined
  ms: number
  heapBefore: number
  heapAfter: number
  heapGrowth: number
  rssBefore: number
  rssAfter: number
  connectionsAfter: number
  /** The plugin's own view after the churn: `connectionCount` and `getStats()`. */
  registries?: { connectionCount: number, open: number, total: number, closedByCode: Record<string, number>, users?: number | undefined, rooms?: number | undefined } | undefined
}

export interface Check {
  name: string
  measured: number
  limit: number
  /** `<=` or `>=` or `<`. */
  relation: '<=' | '>=' | '<'
  unit: string
  met: boolean
  note?: string
}

export interface Results {
  mode: 'full' | 'quick'
  startedAt: string
  durationSec: number
  command: string
  settings: { rounds: number, warmupMs: number, measureMs: number, scenarios: string[], targets: string[], memoryConnections: number, churnCycles: number, churnConcurrency: number }
  machine: Machine
  /** The commit measured, and the files of lib/ and plugins/ that differed from it. */
  source: { commit: string, uncommitted: string[] }
  /** What each server reported about itself: the plugin's options, and those it did not know yet. */
  servers: Record<string, unknown>
  runs: LoadRun[]
  summaries: LoadSummary[]
  memory: MemoryProbe[]
  churn: ChurnProbe[]
  checks: Check[]
}
