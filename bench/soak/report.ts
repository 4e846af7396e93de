/**
 * The soak's figures as markdown, written into docs/reliability.md between
 * the markers `<!-- soak:begin -->` and `<!-- soak:end -->`; the rest of
 * that file is written by hand.
 */

interface Summary {
  startedAt: string
  commit?: string
  totalSeconds: number
  scale: number
  seed: number
  machine: { nproc: number, cpuModel: string, node: string, loadavgAtStart: number[] }
  loadavgAtEnd: number[]
  failures: string[]
  results: Record<string, any>
}

const f = (n: number | undefined, digits = 1): string => n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits)
const int = (n: number | undefined): string => n === undefined ? '–' : Math.round(n).toLocaleString('en-US').replace(/,/g, ' ')

/** One section: a heading and a two-column table of figures. */
function table (title: string, rows: Array<[string, string] | null>): string[] {
  const out = [`### ${title}`, '', '| figure | value |', '|---|---|']
  for (const row of rows) if (row !== null) out.push(`| ${row[0]} | ${row[1]} |`)
  out.push('')
  return out
}

export function renderReliability (doc: string, summary: Summary, resultFile: string): string {
  const begin = '<!-- soak:begin -->'
  const end = '<!-- soak:end -->'
  const from = doc.indexOf(begin)
  const to = doc.indexOf(end)
  if (from === -1 || to === -1) throw new Error('docs/reliability.md has no soak markers')
  const r = summary.results
  const out: string[] = []
  out.push(`Run of ${summary.startedAt.slice(0, 16).replace('T', ' ')} UTC, ${f(summary.totalSeconds / 60, 1)} min, on ${summary.machine.nproc} cores (${summary.machine.cpuModel}), Node ${summary.machine.node}, load average ${summary.machine.loadavgAtStart.map((l) => f(l, 2)).join(' ')} at the start${summary.commit === undefined ? '' : `, at commit ${summary.commit}`}. Scale ${summary.scale}, seed ${summary.seed}. Raw figures: [${resultFile}](../${resultFile}).`)
  out.push('')
  out.push(summary.failures.length === 0 ? '**Every requirement held.**' : `**Requirements that failed:** ${summary.failures.map((x) => `\`${x}\``).join('; ')}`)
  out.push('')
  const c = r.connections
  if (c !== undefined) {
    const hb = c.heartbeat
    out.push(...table('10 000 connections on one instance', [
      [`connections open (each in one of ${int(c.connections / 100)} rooms)`, `${int(c.connections)}, opened in ${f(c.openSeconds)} s`],
      c.overLimit === null ? null : ['one more client (default `maxConnections` 10 000)', String(c.overLimit)],
      ['server RSS per connection (after GC)', `${f(c.perConnection.rssKiB)} KiB (${f(c.rssBeforeMiB)} → ${f(c.rssAfterMiB)} MiB)`],
      ['server heap per connection (after GC)', `${f(c.perConnection.heapKiB)} KiB (${f(c.heapBeforeMiB)} → ${f(c.heapAfterMiB)} MiB)`],
      [`event-loop delay over ${f(c.steadySeconds, 0)} s steady: p50 / p99 / max`, `${f(c.eventLoopDelayMs.p50, 2)} / ${f(c.eventLoopDelayMs.p99, 2)} / ${f(c.eventLoopDelayMs.max, 2)} ms`],
      ['server CPU over the steady period', `${f(c.serverCpuPercent)} % of one core`],
      ['room messages (10 per second, fan-out to ~100 members)', `${int(c.trickle.sent)} sent, ${int(c.trickle.acked)} acked, ${int(c.trickle.deliveriesReported)} deliveries reported`],
      hb.tickCpuMs === undefined
        ? ['heartbeat pass (ping every connection), 3 passes, wall time', `${hb.tickMs.map((ms: number) => f(ms, 1)).join(', ')} ms for ${int(hb.connections)} connections`]
        : ['heartbeat pass (ping every connection), 3 passes: CPU time (wall time)', `${hb.tickCpuMs.map((ms: number, i: number) => `${f(ms, 1)} (${f(hb.tickMs[i] as number, 1)})`).join(', ')} ms for ${int(hb.connections)} connections: ${f(hb.cpuUsPerConnection, 2)} µs of CPU per connection per pass`]
    ]))
  }
  const ch = r.churn
  if (ch !== undefined) {
    out.push(...table('100 000 connect / message / close cycles', [
      ['cycles (half closed with 1000, half reset with a TCP RST)', `${int(ch.cycles)} in ${f(ch.seconds, 0)} s (${int(ch.cyclesPerSecond)} per second), ${int(ch.failed)} failed`],
      [`server heap after GC, after ${int(ch.warmup)} warm-up cycles → at the end`, `${f(ch.heapBeforeMiB, 2)} → ${f(ch.heapAfterMiB, 2)} MiB: **${f(ch.heapGrowthMiB, 2)} MiB** growth (limit 5 MiB)`],
      ['server RSS', `${f(ch.rssBeforeMiB)} → ${f(ch.rssAfterMiB)} MiB`],
      ['registries at the end', Object.entries(ch.registries).map(([k, v]) => `${k} ${String(v)}`).join(', ')],
      ['close codes seen by the server', Object.entries(ch.closedByCode ?? {}).map(([k, v]) => `${k}: ${int(v as number)}`).join(', ')]
    ]))
  }
  const h = r.hostile
  if (h !== undefined) {
    out.push(...table('1 000 000 hostile frames', [
      ['frames sent', `${int(h.frames)} in ${f(h.seconds, 0)} s: ${int(h.messageFrames)} message-level on ${int(h.connections)} connections, ${int(h.rawFrames)} byte-level on ${int(h.rawConnections)} raw TCP connections`],
      ["frames the server's routers received (sentinels and the raw connections' valid messages included)", Object.entries(h.framesReceivedByServer ?? {}).map(([k, v]) => `${k} ${int(v as number)}`).join(', ')],
      ['process exits, uncaught exceptions, unhandled rejections', h.faults === undefined ? 'process gone' : `0, ${int(h.faults.uncaught)}, ${int(h.faults.unhandled)}`],
      ['ids owed by the oracle / answers matched to an owed id, sentinels included / owed ids unanswered without a documented close', `${int(h.expected)} / ${int(h.answered)} / **${int(h.unanswered)}**`],
      h.rateLimitedBatchIds === undefined ? null : ['requests of JSON-RPC batches refused whole by the rate limit, unanswered (the documented limit)', int(h.rateLimitedBatchIds)],
      ['closes by profile and code (`client`: the client closed at the end)', Object.entries(h.closes).sort().map(([k, v]) => `${k}: ${int(v as number)}`).join(', ')],
      ['closes with an undocumented code', Object.keys(h.undocumentedCloses).length === 0 ? 'none' : JSON.stringify(h.undocumentedCloses)],
      ['`ws` protocol errors counted', Object.entries(h.protocolErrors ?? {}).map(([k, v]) => `${k}: ${Object.entries(v as Record<string, number>).map(([code, n]) => `${code} ${int(n)}`).join(', ') || 'none'}`).join('; ')],
      ['error log lines (all from the handlers that throw on purpose)', `${int(h.errorLogLines)}, ${int(h.unexpectedErrorLogLines)} unexpected`],
      ['a fresh client served afterwards', Object.entries(h.fresh).map(([k, v]) => `${k} ${v === true ? 'yes' : 'NO'}`).join(', ')]
    ]))
  }
  const shutdown = r.shutdown as Record<string, any> | undefined
  for (const s of Object.values(shutdown ?? {})) {
    out.push(...table(`Shutdown with 1 000 clients, 10 % stalled: ${String(s.label)}`, [
      ["clients / stalled (bytes stuck in the server's buffer)", `${int(s.clients)} / ${int(s.filled)} of ${int(s.stalled)}`],
      ['`close()`', `${s.closeError === null ? 'resolved' : `**rejected** (\`${String(s.closeError).trim().split(' ')[0] ?? ''}\`)`} after ${int(s.closeMs)} ms (grace ${int(s.graceMs)} ms; limit grace + 1 s)`],
      ['close codes of the reading clients', Object.entries(s.readerCodes).map(([k, v]) => `${k}: ${int(v as number)}`).join(', ')]
    ]))
  }
  return doc.slice(0, from + begin.length) + '\n' + out.join('\n') + '\n' + doc.slice(to)
}
