import type { PipelineObserver } from './observer.js'
import type { RouterStats } from './stats.js'

/**
 * Prometheus metrics through prom-client, an optional peer loaded only when
 * the `metrics` option is set. One source of truth: every counter is read
 * from the router's `RouterStats` (what `getStats()` reports) in a `collect()`
 * callback at scrape time, so nothing is counted twice and the frame path
 * pays nothing for them. Only what counters cannot hold (handler durations,
 * fan-out sizes) is observed on the path, through `PipelineObserver`.
 */

/** The part of a prom-client `Registry` the router uses (prom-client's own type, structurally). */
export interface MetricsRegistry {
  registerMetric: (metric: never) => void
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
  metrics: () => Promise<string>
  readonly contentType: string
}

export interface MetricsConfig {
  /** The registry to register on; default prom-client's global `register`. */
  readonly registry: MetricsRegistry | undefined
  /** Prefix of every metric name. Default `wsr_`. */
  readonly prefix: string
  /** Route serving the registry's text exposition; false when the app serves it. Default `/metrics`. */
  readonly path: string | false
}

/** What the metrics read from one router: its counters, its route, its adapter's broker state. */
export interface MetricsSource {
  readonly route: string
  readonly stats: RouterStats
  readonly broker: () => Record<string, unknown> | null
  /** `getStats().resume` (resumable delivery); null with the `resume` option off. */
  readonly resume: () => ResumeCountersSnapshot | null
}

/** What the resume metrics read: `getStats().resume`, structurally (lib/delivery/counters.ts). */
export interface ResumeCountersSnapshot {
  readonly sessions: number
  readonly parked: number
  readonly resumed: number
  readonly failed: Readonly<Record<string, number>>
  readonly replayedEvents: number
  readonly gaps: number
  readonly evicted: number
  readonly expired: number
  readonly droppedWhileAway: number
  readonly storeFailures: number
}

/** @internal prom-client's module type: kept out of the published types, where prom-client may be absent. */
type PromClient = typeof import('prom-client')
type Labels = Record<string, string | number>
interface Settable { reset: () => void, inc: (labels: Labels, value: number) => void }
interface GaugeLike { reset: () => void, set: (labels: Labels, value: number) => void }

/** Label value of a frame whose type has no handler: one series, whatever clients send. */
export const OTHER_TYPE = 'other'

const HANDLER_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const FANOUT_BUCKETS = [0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000, 10000]

/**
 * The metric set of one registry and prefix, shared by every router
 * registered on it (one series per route); built on the first router,
 * removed from the registry with the last.
 */
class MetricSet {
  readonly sources = new Set<MetricsSource>()
  readonly handlerDuration: BucketHistogram
  readonly fanoutTargets: BucketHistogram
  private readonly names: string[] = []

  constructor (client: PromClient, private readonly registry: MetricsRegistry, prefix: string) {
    const registers = [registry as unknown as import('prom-client').Registry]
    const sources = this.sources
    type Read = (source: MetricsSource, write: (labels: Labels, value: number) => void) => void
    /** At scrape time: drop the last values, then write each router's, under its route label. */
    const collectFrom = <M extends { reset: () => void }>(read: Read, write: (metric: M, labels: Labels, value: number) => void) => function (this: M): void {
      this.reset()
      for (const source of sources) read(source, (labels, value) => { write(this, { route: source.route, ...labels }, value) })
    }
    const counter = (name: string, help: string, labelNames: string[], read: Read): void => {
      this.names.push(prefix + name)
      // eslint-disable-next-line no-new
      new client.Counter({ name: prefix + name, help, labelNames, registers, collect: collectFrom<Settable>(read, (m, labels, v) => { m.inc(labels, v) }) })
    }
    const gauge = (name: string, help: string, labelNames: string[], read: Read): void => {
      this.names.push(prefix + name)
      // eslint-disable-next-line no-new
      new client.Gauge({ name: prefix + name, help, labelNames, registers, collect: collectFrom<GaugeLike>(read, (m, labels, v) => { m.set(labels, v) }) })
    }
    gauge('connections_open', 'WebSocket connections open now', ['route'], (s, set) => set({}, s.stats.connectionsOpen))
    counter('connections_opened_total', 'WebSocket connections accepted', ['route'], (s, add) => add({}, s.stats.connectionsTotal))
    counter('connections_closed_total', 'WebSocket connections closed, by the close code the server sent (else the peer\'s; 1006: none)', ['route', 'code'], (s, add) => {
      for (const [code, n] of s.stats.closedByCode) add({ code }, n)
    })
    counter('upgrades_refused_total', 'Upgrades refused before the 101, by reason', ['route', 'reason'], (s, add) => {
      for (const [reason, n] of s.stats.refused) add({ reason }, n)
    })
    counter('frames_received_total', 'Text and binary frames received (before any check)', ['route'], (s, add) => add({}, s.stats.framesReceived))
    counter('messages_total', 'Messages of a registered type (rpc:<method> for JSON-RPC) by outcome; type "other": no handler', ['route', 'type', 'outcome'], (s, add) => {
      for (const [type, c] of s.stats.types) {
        add({ type, outcome: 'handled' }, c.handled)
        add({ type, outcome: 'failed' }, c.failed)
      }
      add({ type: OTHER_TYPE, outcome: 'unhandled' }, s.stats.unhandled)
    })
    counter('frames_invalid_total', 'Frames refused before reaching a handler, by error code', ['route', 'code'], (s, add) => {
      for (const [code, n] of s.stats.invalid) add({ code }, n)
    })
    counter('frames_refused_total', 'Frames refused to protect the server: rate_limited (token bucket) or overloaded (maxInFlight)', ['route', 'reason'], (s, add) => {
      add({ reason: 'rate_limited' }, s.stats.rateLimited)
      add({ reason: 'overloaded' }, s.stats.overloaded)
    })
    counter('handler_failures_total', 'Handlers that threw or rejected (error) or ran past their deadline (timeout)', ['route', 'kind'], (s, add) => {
      add({ kind: 'error' }, s.stats.handlerErrors)
      add({ kind: 'timeout' }, s.stats.handlerTimeouts)
    })
    counter('sends_total', 'Frames written or buffered to a socket', ['route'], (s, add) => add({}, s.stats.sendsOk))
    counter('send_failures_total', 'Sends that failed, by SendFailure reason', ['route', 'reason'], (s, add) => {
      for (const [reason, n] of s.stats.sendsFailed) add({ reason }, n)
    })
    counter('protocol_errors_total', 'Socket-level protocol errors (bad framing, invalid UTF-8, too big), by code', ['route', 'code'], (s, add) => {
      for (const [code, n] of s.stats.protocolErrors) add({ code }, n)
    })
    gauge('broker_up', 'The message broker (Redis adapter) is connected: 1, or 0; absent for the in-memory adapter', ['route'], (s, set) => {
      const broker = s.broker()
      if (broker !== null) set({}, broker.connected === true ? 1 : 0)
    })
    counter('broker_outages_total', 'Connections to the broker lost since start', ['route'], (s, add) => {
      const broker = s.broker()
      if (broker !== null) add({}, numberOr0(broker.outages))
    })
    counter('broker_outage_seconds_total', 'Time spent disconnected from the broker after a lost connection, the current outage included', ['route'], (s, add) => {
      const broker = s.broker()
      if (broker !== null) add({}, numberOr0(broker.outageMsTotal) / 1000)
    })
    // Resumable delivery (issue 12): one series per route, and only with `resume` on.
    const fromResume = (read: (r: ResumeCountersSnapshot) => number): Read => (s, add) => {
      const resume = s.resume()
      if (resume !== null) add({}, read(resume))
    }
    gauge('resume_sessions', 'Resumable sessions this instance holds: live, replaying and parked', ['route'], fromResume((r) => r.sessions))
    gauge('resume_sessions_parked', 'Sessions parked now (no socket), waiting for their client within the resume window', ['route'], fromResume((r) => r.parked))
    counter('resume_resumed_total', 'Sessions resumed (a resumed frame sent), gaps included', ['route'], fromResume((r) => r.resumed))
    counter('resume_failed_total', 'Resumes refused with resume_failed (a fresh session), by reason', ['route', 'reason'], (s, add) => {
      const resume = s.resume()
      if (resume !== null) for (const [reason, n] of Object.entries(resume.failed)) add({ reason }, n)
    })
    counter('resume_replayed_events_total', 'Missed events replayed to resuming clients', ['route'], fromResume((r) => r.replayedEvents))
    counter('resume_gaps_total', 'Resumes that reported a gap (events lost to the store bound or a failed append)', ['route'], fromResume((r) => r.gaps))
    counter('resume_evicted_total', 'Parked sessions ended early for maxSessions', ['route'], fromResume((r) => r.evicted))
    counter('resume_expired_total', 'Parked sessions whose window passed without a resume', ['route'], fromResume((r) => r.expired))
    counter('resume_dropped_while_away_total', 'Droppable frames (typing, progress) not kept for a parked or replaying session', ['route'], fromResume((r) => r.droppedWhileAway))
    counter('resume_store_failures_total', 'Resume store calls that failed or were refused', ['route'], fromResume((r) => r.storeFailures))
    this.handlerDuration = new BucketHistogram(prefix + 'handler_duration_seconds',
      'Time from calling a handler to its settling (return, throw, rejection or deadline), by registered type', HANDLER_BUCKETS)
    this.fanoutTargets = new BucketHistogram(prefix + 'fanout_targets',
      'Local connections one fan-out (room, user, broadcast) handed its frame to', FANOUT_BUCKETS)
    for (const histogram of [this.handlerDuration, this.fanoutTargets]) {
      this.names.push(histogram.name)
      registry.registerMetric(histogram as never)
    }
  }

  unregister (): void {
    for (const name of this.names) this.registry.removeSingleMetric(name)
  }
}

/** One labelled series of a `BucketHistogram`: plain numbers, updated without allocation. */
export class BucketSeries {
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor (readonly labels: Readonly<Record<string, string>>, private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length)
  }

  observe (value: number): void {
    const bounds = this.bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        (this.counts[i] as number)++
        break
      }
    }
    this.sum += value
    this.count++
  }
}

/**
 * A histogram registered on a prom-client registry through its metric
 * contract (`name`, `help`, `type`, `aggregator`, `get()`, `reset()`), whose
 * observation is a bucket search and three additions. prom-client's own
 * `Histogram.observe` validates and hashes the labels on every call, about
 * 0.6 µs here, 5 % of a ping reply's server CPU (npm run bench:metrics).
 */
export class BucketHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, BucketSeries>()

  constructor (readonly name: string, readonly help: string, private readonly bounds: readonly number[]) {}

  /** The series of these labels, created once; keep it and observe on it. */
  labels (labels: Readonly<Record<string, string>>): BucketSeries {
    const key = JSON.stringify(labels)
    let series = this.series.get(key)
    if (series === undefined) {
      series = new BucketSeries(labels, this.bounds)
      this.series.set(key, series)
    }
    return series
  }

  reset (): void {
    for (const series of this.series.values()) {
      series.counts.fill(0)
      series.sum = 0
      series.count = 0
    }
  }

  /** prom-client's shape of a histogram's samples: cumulative `_bucket`s, `+Inf`, `_sum`, `_count`. */
  get (): { name: string, help: string, type: string, aggregator: string, values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> } {
    const values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> = []
    for (const series of this.series.values()) {
      let cumulative = 0
      for (let i = 0; i < this.bounds.length; i++) {
        cumulative += series.counts[i] as number
        values.push({ labels: { ...series.labels, le: this.bounds[i] as number }, value: cumulative, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { ...series.labels, le: '+Inf' }, value: series.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { ...series.labels }, value: series.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { ...series.labels }, value: series.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

function numberOr0 (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0
}

const sets = new WeakMap<MetricsRegistry, Map<string, MetricSet>>()

/** The metrics of one router; `close()` takes its series off the registry. */
export interface RouterMetrics {
  readonly registry: MetricsRegistry
  readonly observer: PipelineObserver
  close: () => void
}

/** @internal Load prom-client (an optional peer); undefined when it is not installed. */
export async function loadPromClient (): Promise<PromClient | undefined> {
  try {
    return await import('prom-client')
  } catch (err) {
    // Only a missing package means "not installed"; a broken one keeps its own error.
    const code = (err as { code?: unknown }).code
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && String((err as Error).message).includes('prom-client')) return undefined
    throw err
  }
}

/** @internal The metrics of one router on its registry (plugins/observability.ts). */
export function createMetrics (client: PromClient, config: MetricsConfig, source: MetricsSource): RouterMetrics {
  const registry = config.registry ?? (client.register as unknown as MetricsRegistry)
  let byPrefix = sets.get(registry)
  if (byPrefix === undefined) {
    byPrefix = new Map()
    sets.set(registry, byPrefix)
  }
  let set = byPrefix.get(config.prefix)
  if (set === undefined) {
    set = new MetricSet(client, registry, config.prefix)
    byPrefix.set(config.prefix, set)
  }
  set.sources.add(source)
  const metricSet = set
  // Bound once per router: the route label costs nothing per observation.
  const durations = new Map<string, { observe: (value: number) => void }>()
  const fanout = metricSet.fanoutTargets.labels({ route: source.route })
  const observer: PipelineObserver = {
    handlerSettled (type, startedAt) {
      let child = durations.get(type)
      if (child === undefined) {
        child = metricSet.handlerDuration.labels({ route: source.route, type })
        durations.set(type, child)
      }
      child.observe((performance.now() - startedAt) / 1000)
    },
    fanout (targets) {
      fanout.observe(targets)
    }
  }
  return {
    registry,
    observer,
    close () {
      metricSet.sources.delete(source)
      if (metricSet.sources.size > 0) return
      metricSet.unregister()
      byPrefix.delete(config.prefix)
    }
  }
}
