/**
 * The ratio chart (docs/benchmark-ratios.svg), drawn as plain SVG text: no
 * library, no external service. One panel per ratio; in each, one row per
 * scenario and one bar per target of this project; a solid line at 1× and
 * a dashed line at each issue-6 target.
 */
import { ALL_SCENARIOS, TARGETS, baselinesOf, type TargetSpec } from './config.js'
import { ratios, type Ratios } from './report.js'
import type { Results } from './results.js'

interface Panel {
  title: string
  baseline: 'handwritten' | 'socketio'
  metric: keyof Ratios
  limits: Array<{ value: number, label: string }>
  better: string
}

const PANELS: readonly Panel[] = [
  { title: 'Server CPU per reply ÷ hand-written router', baseline: 'handwritten', metric: 'cpu', limits: [{ value: 1.15, label: 'ping ≤ 1.15' }, { value: 1.3, label: 'validated ≤ 1.3' }], better: 'lower is better' },
  { title: 'Replies per second ÷ hand-written router', baseline: 'handwritten', metric: 'throughput', limits: [{ value: 0.87, label: 'ping ≥ 0.87' }], better: 'higher is better' },
  { title: 'p99 latency ÷ hand-written router', baseline: 'handwritten', metric: 'p99', limits: [{ value: 1.25, label: 'C=1000: ≤ 1.25' }], better: 'lower is better' },
  { title: 'Server CPU per reply ÷ Socket.IO acked event', baseline: 'socketio', metric: 'cpu', limits: [{ value: 0.85, label: '≤ 0.85' }], better: 'lower is better' }
]

const COLORS = ['#4c78a8', '#f58518', '#54a24b', '#b279a2']
const WIDTH = 860
const LABEL_WIDTH = 130
const PLOT_WIDTH = 620
const BAR = 10
const BAR_GAP = 2
const ROW_GAP = 10
const PANEL_HEAD = 58
const PANEL_FOOT = 26

function escape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

function fmt (value: number): string {
  return value.toFixed(2)
}

export function renderChart (results: Results, sourceFile: string): string {
  const scenarios = ALL_SCENARIOS.filter((s) => results.summaries.some((x) => x.scenario === s.id))
  const targets: TargetSpec[] = TARGETS.filter((t) => t.number >= 4 && results.summaries.some((x) => x.target === t.id))
  const rowHeight = targets.length * (BAR + BAR_GAP) + ROW_GAP
  const panelHeight = PANEL_HEAD + scenarios.length * rowHeight + PANEL_FOOT
  const legendHeight = 24 + targets.length * 16
  const height = 56 + legendHeight + PANELS.length * panelHeight + 30
  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="11">`)
  out.push(`<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`)
  out.push('<text x="16" y="24" font-size="16" font-weight="bold">fastify-ws-router vs baselines: ratios of medians</text>')
  const rounds = results.settings.rounds
  out.push(`<text x="16" y="42" fill="#555">${escape(`${results.mode} run ${results.startedAt.slice(0, 16).replace('T', ' ')} UTC · ${results.machine.nproc} cores, ${results.machine.cpuModel} · node ${results.machine.node} · ${rounds} round(s) of ${results.settings.measureMs / 1000} s`)}</text>`)

  let y = 56
  out.push(`<text x="16" y="${y + 12}" font-weight="bold">Targets (each compared with the baseline handling the same message)</text>`)
  targets.forEach((target, i) => {
    const ly = y + 20 + i * 16
    out.push(`<rect x="16" y="${ly}" width="12" height="10" fill="${COLORS[i % COLORS.length]}"/>`)
    out.push(`<text x="34" y="${ly + 9}">${escape(target.label)}</text>`)
  })
  y += legendHeight

  for (const panel of PANELS) {
    const values: Array<Array<number | undefined>> = scenarios.map((scenario) => targets.map((target) => {
      const r = ratios(results, scenario.id, target.id, baselinesOf(target)[panel.baseline])
      return r === undefined || !Number.isFinite(r[panel.metric]) ? undefined : r[panel.metric]
    }))
    const largest = Math.max(1, ...panel.limits.map((l) => l.value), ...values.flat().filter((v): v is number => v !== undefined))
    const xMax = Math.ceil(largest * 4 + 1) / 4
    const x = (value: number): number => LABEL_WIDTH + (value / xMax) * PLOT_WIDTH
    const top = y + PANEL_HEAD
    const bottom = top + scenarios.length * rowHeight
    out.push(`<text x="16" y="${y + 20}" font-size="13" font-weight="bold">${escape(panel.title)}</text>`)
    out.push(`<text x="${WIDTH - 16}" y="${y + 20}" text-anchor="end" fill="#555">${escape(panel.better)}</text>`)
    // grid
    for (let tick = 0; tick <= xMax + 1e-9; tick += 0.25) {
      const tx = x(tick)
      out.push(`<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${bottom}" stroke="#eee"/>`)
      if (Math.abs(tick * 2 - Math.round(tick * 2)) < 1e-9) out.push(`<text x="${tx}" y="${bottom + 14}" text-anchor="middle" fill="#555">${tick.toFixed(1)}×</text>`)
    }
    scenarios.forEach((scenario, row) => {
      const ry = top + row * rowHeight
      out.push(`<text x="${LABEL_WIDTH - 8}" y="${ry + (rowHeight - ROW_GAP) / 2 + 4}" text-anchor="end">${escape(scenario.label)}</text>`)
      targets.forEach((_, i) => {
        const value = values[row]?.[i]
        const by = ry + i * (BAR + BAR_GAP)
        if (value === undefined) {
          out.push(`<text x="${x(0) + 4}" y="${by + BAR - 1}" fill="#999" font-size="9">no data</text>`)
          return
        }
        out.push(`<rect x="${x(0)}" y="${by}" width="${Math.max(1, x(value) - x(0))}" height="${BAR}" fill="${COLORS[i % COLORS.length]}"/>`)
        out.push(`<text x="${x(value) + 3}" y="${by + BAR - 1}" font-size="9">${fmt(value)}</text>`)
      })
    })
    out.push(`<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${bottom}" stroke="#333" stroke-width="1.2"/>`)
    panel.limits.forEach((limit, i) => {
      const lx = x(limit.value)
      out.push(`<line x1="${lx}" y1="${top - 6}" x2="${lx}" y2="${bottom}" stroke="#d62728" stroke-width="1.2" stroke-dasharray="4 3"/>`)
      out.push(`<text x="${lx + 3}" y="${top - 8 - i * 11}" fill="#d62728" font-size="10">${escape(limit.label)}</text>`)
    })
    y += panelHeight
  }
  out.push(`<text x="16" y="${height - 12}" fill="#555">Generated by bench/run.ts from ${escape(sourceFile)}; dashed red lines: issue 6 targets; solid line: parity.</text>`)
  out.push('</svg>')
  return out.join('\n') + '\n'
}
