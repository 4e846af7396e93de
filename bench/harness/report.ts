/**
 * Summaries over rounds, issue 6's targets as checks, and the markdown report.
 */
import { ALL_SCENARIOS, KEY_SCENARIOS, SERVERS, TARGETS, baselinesOf } from './config.js'
import type { Check, LoadRun, LoadSummary, Results } from './results.js'
import { spread, sum, type Spread } from './stats.js'

export function summarise (runs: readonly LoadRun[]): LoadSummary[] {
  const groups = new Map<string, LoadRun[]>()
  for (const run of runs) {
    const key = `${run.scenario}\u0000${run.target}`
    const group = groups.get(key)
    if (group === undefined) groups.set(key, [run])
    else group.push(run)
  }
  const summaries: LoadSummary[] = []
  for (const group of groups.values()) {
    const first = group[0] as LoadRun
    const of = (pick: (run: LoadRun) => number): Spread => spread(group.map(pick))
    summaries.push({
      scenario: first.scenario,
      target: first.target,
      rounds: group.length,
      repliesPerSec: of((r) => r.repliesPerSec),
      p50: of((r) => r.latencyMs.p50),
      p90: of((r) => r.latencyMs.p90),
      p99: of((r) => r.latencyMs.p99),
      max: of((r) => r.latencyMs.max),
      serverCpuUsPerReply: of((r) => r.serverCpuUsPerReply),
      serverCpuPct: of((r) => r.serverCpuPct),
      clientCpuPct: of((r) => r.clientCpuPct),
      badReplies: sum(group.map((r) => r.badReplies)),
      dropped: sum(group.map((r) => r.dropped)),
      connectFailed: sum(group.map((r) => r.connectFailed))
    })
  }
  return summaries
}

export function findSummary (results: Pick<Results, 'summaries'>, scenario: string, target: string): LoadSummary | undefined {
  return results.summaries.find((s) => s.scenario === scenario && s.target === target)
}

/** Ratios of medians of one target to one baseline in one scenario. */
export interface Ratios {
  cpu: number
  throughput: number
  p99: number
}

export function ratios (results: Pick<Results, 'summaries'>, scenario: string, target: string, baseline: string): Ratios | undefined {
  const a = findSummary(results, scenario, target)
  const b = findSummary(results, scenario, baseline)
  if (a === undefined || b === undefined) return undefined
  return {
    cpu: a.serverCpuUsPerReply.median / b.serverCpuUsPerReply.median,
    throughput: a.repliesPerSec.median / b.repliesPerSec.median,
    p99: a.p99.median / b.p99.median
  }
}

function check (name: string, measured: number, relation: Check['relation'], limit: number, unit: string, note?: string): Check {
  const met = relation === '<=' ? measured <= limit : relation === '>=' ? measured >= limit : measured < limit
  return note === undefined ? { name, measured, limit, relation, unit, met } : { name, measured, limit, relation, unit, met, note }
}

function labelOf (scenario: string): string {
  return ALL_SCENARIOS.find((s) => s.id === scenario)?.label ?? scenario
}

/** Issue 6's targets, each as a check on this run's figures (ratios of medians). */
export function evaluateChecks (results: Results): Check[] {
  const checks: Check[] = []
  for (const scenario of KEY_SCENARIOS) {
    const at = labelOf(scenario)
    const ping = ratios(results, scenario, 'plugin-ping', 'handwritten-ping')
    if (ping !== undefined) {
      checks.push(check(`ping: server CPU per reply vs hand-written, ${at}`, ping.cpu, '<=', 1.15, '×'))
      checks.push(check(`ping: throughput vs hand-written, ${at}`, ping.throughput, '>=', 0.87, '×'))
    }
    const validated = ratios(results, scenario, 'plugin-user_message', 'handwritten-user_message')
    if (validated !== undefined) {
      checks.push(check(`validated user_message: server CPU per reply vs hand-written (same message, typeof check), ${at}`, validated.cpu, '<=', 1.3, '×'))
    }
    const validatedVsPing = ratios(results, scenario, 'plugin-user_message', 'handwritten-ping')
    if (validatedVsPing !== undefined) {
      checks.push(check(`validated user_message: server CPU per reply vs hand-written ping, ${at}`, validatedVsPing.cpu, '<=', 1.3, '×', 'stricter reading: the hand-written router doing less work'))
    }
    const pingSio = ratios(results, scenario, 'plugin-ping', 'socketio-ping')
    if (pingSio !== undefined) checks.push(check(`ping: server CPU per reply vs Socket.IO ack, ${at}`, pingSio.cpu, '<=', 0.85, '×'))
    const validatedSio = ratios(results, scenario, 'plugin-user_message', 'socketio-user_message')
    if (validatedSio !== undefined) checks.push(check(`validated user_message: server CPU per reply vs Socket.IO ack, ${at}`, validatedSio.cpu, '<=', 0.85, '×'))
  }
  for (const scenario of ['c1000-w1-64b', 'c1000-w1-4kib']) {
    const ping = ratios(results, scenario, 'plugin-ping', 'handwritten-ping')
    if (ping !== undefined) checks.push(check(`ping: p99 latency vs hand-written, ${labelOf(scenario)}`, ping.p99, '<=', 1.25, '×'))
  }
  // Issue 9's targets: in every scenario of the run, not only the key ones.
  for (const scenario of ALL_SCENARIOS.map((s) => s.id)) {
    const at = labelOf(scenario)
    const ping = ratios(results, scenario, 'plugin-ping', 'handwritten-ping')
    if (ping !== undefined) checks.push(check(`issue 9: ping, server CPU per reply vs hand-written, ${at}`, ping.cpu, '<=', 1.1, '×'))
    const validated = ratios(results, scenario, 'plugin-user_message', 'handwritten-user_message')
    if (validated !== undefined) checks.push(check(`issue 9: validated typed handler, server CPU per reply vs hand-written, ${at}`, validated.cpu, '<=', 1.2, '×'))
    const roomOfOne = ratios(results, scenario, 'plugin-room_message', 'handwritten-user_message')
    if (roomOfOne !== undefined) checks.push(check(`issue 9: built-in user_message in a room of one, server CPU per reply vs hand-written user_message, ${at}`, roomOfOne.cpu, '<=', 1.5, '×'))
  }
  const handMemory = results.memory.find((m) => m.server === 'handwritten')
  for (const name of ['plugin', 'plugin-lifecycle', 'plugin-baseline']) {
    const probe = results.memory.find((m) => m.server === name)
    if (probe === undefined || handMemory === undefined) continue
    const label = SERVERS[name as 'plugin'].label
    checks.push(check(`memory per idle connection (heap after GC), ${label}, minus hand-written`, probe.bytesPerConnection.heapUsed - handMemory.bytesPerConnection.heapUsed, '<=', 2048, 'B'))
    checks.push(check(`memory per idle connection (RSS), ${label}, minus hand-written`, probe.bytesPerConnection.rss - handMemory.bytesPerConnection.rss, '<=', 2048, 'B'))
  }
  for (const probe of results.churn) {
    if (probe.server !== 'plugin' && probe.server !== 'plugin-lifecycle') continue
    const label = SERVERS[probe.server].label
    checks.push(check(`churn: heap growth after GC over ${probe.cycles} cycles, ${label}`, probe.heapGrowth, '<', 2 * 1024 * 1024, 'B'))
    if (probe.registries !== undefined) {
      const r = probe.registries
      checks.push(check(`churn: registries empty after the churn (connectionCount + stats open + users + rooms), ${label}`, r.connectionCount + r.open + (r.users ?? 0) + (r.rooms ?? 0), '<=', 0, ''))
    }
  }
  return checks
}

// ---- markdown ----

function n (value: number, digits = 0): string {
  if (!Number.isFinite(value)) return '–'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function range (s: Spread, digits: number, rounds: number): string {
  return rounds > 1 ? `${n(s.median, digits)} (${n(s.min, digits)}–${n(s.max, digits)})` : n(s.median, digits)
}

function kib (bytes: number, digits = 2): string {
  return `${n(bytes / 1024, digits)} KiB`
}

function formatMeasured (c: Check): string {
  if (c.unit === '×') return `${n(c.measured, 2)}×`
  if (c.unit === 'B') return `${n(c.measured, 0)} B (${kib(c.measured)})`
  return n(c.measured, 0)
}

function formatLimit (c: Check): string {
  if (c.unit === '×') return `${c.relation} ${c.limit}×`
  if (c.unit === 'B') return `${c.relation} ${kib(c.limit, 0)}`
  return `${c.relation} ${c.limit}`
}

export function renderMarkdown (results: Results): string {
  const lines: string[] = []
  const { machine, settings } = results
  lines.push(`## Benchmark results (${results.mode}, ${results.startedAt})`, '')
  lines.push(`- Command: \`${results.command}\`; duration ${results.durationSec} s`)
  lines.push(`- Machine: ${machine.cpuModel}, ${machine.nproc} cores, ${machine.memoryGiB} GiB, ${machine.os}, node ${machine.node}; fd limit ${machine.fdLimit}`)
  lines.push(`- Pinning: ${machine.pinning === null ? 'none' : `client on core ${machine.pinning.client} (${machine.loadWorkers} load worker thread(s)), servers on core ${machine.pinning.server}`}; load average ${machine.loadAverage.start.join(' ')} at start, ${machine.loadAverage.end.join(' ')} at end`)
  lines.push(`- Code: commit ${results.source.commit}${results.source.uncommitted.length > 0 ? ` plus uncommitted changes to ${results.source.uncommitted.join(', ')}` : ''}`)
  lines.push(`- Each run: ${settings.warmupMs / 1000} s warm-up, ${settings.measureMs / 1000} s measured; ${settings.rounds} round(s), targets alternating; figures are medians${settings.rounds > 1 ? ' (min–max)' : ''}`)
  for (const [name, info] of Object.entries(results.servers)) {
    const { options, unknownOptions } = info as { options?: unknown, unknownOptions?: string[] }
    if (options === undefined) continue
    lines.push(`- ${SERVERS[name as 'plugin']?.label ?? name} options: \`${JSON.stringify(options)}\`${unknownOptions !== undefined && unknownOptions.length > 0 ? ` (not known to this version, not applied: ${unknownOptions.join(', ')})` : ''}`)
  }
  lines.push('')

  if (results.summaries.length > 0) {
    lines.push('### Throughput, latency, server CPU per reply', '')
    lines.push('| scenario | target | replies/s | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/reply | server CPU % | client CPU % | bad/dropped |')
    lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const scenario of ALL_SCENARIOS) {
      for (const target of TARGETS) {
        const s = findSummary(results, scenario.id, target.id)
        if (s === undefined) continue
        lines.push(`| ${scenario.label} | ${target.label} | ${range(s.repliesPerSec, 0, s.rounds)} | ${n(s.p50.median, 2)} | ${n(s.p90.median, 2)} | ${range(s.p99, 2, s.rounds)} | ${n(s.max.median, 1)} | ${range(s.serverCpuUsPerReply, 1, s.rounds)} | ${n(s.serverCpuPct.median)} | ${n(s.clientCpuPct.median)} | ${s.badReplies}/${s.dropped} |`)
      }
    }
    lines.push('')

    lines.push('### Ratios (medians): this project vs the baselines', '')
    lines.push('| scenario | target | CPU/reply ÷ hand-written | replies/s ÷ hand-written | p99 ÷ hand-written | CPU/reply ÷ Socket.IO | replies/s ÷ Socket.IO |')
    lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: |')
    for (const scenario of ALL_SCENARIOS) {
      for (const target of TARGETS.filter((t) => t.number >= 4)) {
        const base = baselinesOf(target)
        const hand = ratios(results, scenario.id, target.id, base.handwritten)
        const sio = ratios(results, scenario.id, target.id, base.socketio)
        if (hand === undefined && sio === undefined) continue
        lines.push(`| ${scenario.label} | ${target.label} | ${hand === undefined ? '–' : n(hand.cpu, 2)} | ${hand === undefined ? '–' : n(hand.throughput, 2)} | ${hand === undefined ? '–' : n(hand.p99, 2)} | ${sio === undefined ? '–' : n(sio.cpu, 2)} | ${sio === undefined ? '–' : n(sio.throughput, 2)} |`)
      }
    }
    lines.push('')
  }

  if (results.memory.length > 0) {
    lines.push(`### Memory per idle connection (${settings.memoryConnections} connections, after \`global.gc()\`)`, '')
    lines.push('| server | open | RSS per conn | heap per conn | external per conn | heap before → loaded |')
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: |')
    for (const m of results.memory) {
      lines.push(`| ${SERVERS[m.server as 'plugin'].label} | ${m.opened}${m.failed > 0 ? ` (${m.failed} failed)` : ''} | ${kib(m.bytesPerConnection.rss)} | ${kib(m.bytesPerConnection.heapUsed)} | ${kib(m.bytesPerConnection.external)} | ${n(m.before.heapUsed / 2 ** 20, 1)} → ${n(m.loaded.heapUsed / 2 ** 20, 1)} MiB |`)
    }
    lines.push('')
  }

  if (results.churn.length > 0) {
    lines.push(`### Churn (${settings.churnCycles} connect / one message / close cycles, concurrency ${settings.churnConcurrency}, every other one \`terminate()\`d)`, '')
    lines.push('| server | ok / failed | time | heap after GC before → after | growth | open after | plugin registries after |')
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | --- |')
    for (const c of results.churn) {
      const registries = c.registries === undefined ? '–' : `connectionCount ${c.registries.connectionCount}, open ${c.registries.open}${c.registries.users === undefined ? '' : `, users ${c.registries.users}, rooms ${c.registries.rooms ?? 0}`} (total served ${c.registries.total})`
      lines.push(`| ${SERVERS[c.server as 'plugin'].label} | ${c.ok} / ${c.failed} | ${n(c.ms / 1000, 1)} s | ${n(c.heapBefore / 2 ** 20, 2)} → ${n(c.heapAfter / 2 ** 20, 2)} MiB | ${kib(c.heapGrowth, 1)} | ${c.connectionsAfter} | ${registries} |`)
    }
    lines.push('')
  }

  if (results.checks.length > 0) {
    lines.push('### Issue 6 targets', '')
    lines.push('| target | measured | limit | met |')
    lines.push('| --- | ---: | ---: | --- |')
    for (const c of results.checks) {
      lines.push(`| ${c.name}${c.note === undefined ? '' : ` (${c.note})`} | ${formatMeasured(c)} | ${formatLimit(c)} | ${c.met ? 'yes' : '**no**'} |`)
    }
    lines.push('')
  }
  return lines.join('\n')
}
