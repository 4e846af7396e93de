/**
 * Summarise a V8 CPU profile (`node --cpu-prof`, or `npm run bench --
 * --cpu-prof plugin`): self time by function and by file, and the
 * inclusive time of this project's own functions (lib/, plugins/), each as
 * a share of the busy time (samples other than `(idle)`). A server's
 * profile spans its whole life, start-up included; run long measurements
 * (`--measure 20`) so that start-up is a small share.
 *
 *   npx tsx bench/profile.ts bench/results/profiles/plugin-….cpuprofile [--top 30] [--skip 8]
 *
 * `--skip S` leaves out the first S seconds of the profile (start-up, the
 * connection ramp), so that the shares are those of the measured load.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface CallFrame { functionName: string, url: string, lineNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, hitCount?: number, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' }, skip: { type: 'string', default: '0' } }, allowPositionals: true })
const file = positionals[0]
if (file === undefined) {
  console.error('usage: npx tsx bench/profile.ts FILE.cpuprofile [--top N]')
  process.exit(2)
}
const top = Number(values.top)
const skipMicros = Number(values.skip) * 1e6
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile

// Time per sample: the delta that follows it.
const selfMicros = new Map<number, number>()
let elapsed = 0
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] as number
  const delta = profile.timeDeltas[i + 1] ?? 0
  elapsed += profile.timeDeltas[i] ?? 0
  if (elapsed < skipMicros) continue
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + delta)
}
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
let total = 0
let idle = 0
for (const [id, micros] of selfMicros) {
  if ((byId.get(id) as ProfileNode).callFrame.functionName === '(idle)') {
    idle += micros
    selfMicros.delete(id)
  } else {
    total += micros
  }
}
process.stdout.on('error', () => process.exit(0))

function shortUrl (url: string): string {
  const cut = url.replace(/^file:\/\//, '')
  const at = cut.indexOf('/node_modules/')
  if (at !== -1) return cut.slice(at + 1)
  const root = process.cwd() + '/'
  return cut.startsWith(root) ? cut.slice(root.length) : cut
}

function label (frame: CallFrame): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return frame.url === '' ? name : `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
}

function pct (micros: number): string {
  return `${(micros / total * 100).toFixed(1).padStart(5)}%`
}

function table (title: string, rows: Map<string, number>): void {
  console.log(`\n${title}`)
  for (const [key, micros] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(micros)}  ${key}`)
}

const selfByFunction = new Map<string, number>()
const selfByFile = new Map<string, number>()
for (const [id, micros] of selfMicros) {
  const frame = (byId.get(id) as ProfileNode).callFrame
  selfByFunction.set(label(frame), (selfByFunction.get(label(frame)) ?? 0) + micros)
  const where = frame.url === '' ? `(${frame.functionName || 'native'})` : shortUrl(frame.url).replace(/^(node_modules\/(@[^/]+\/)?[^/]+)\/.*$/, '$1')
  selfByFile.set(where, (selfByFile.get(where) ?? 0) + micros)
}

// Inclusive time of the project's own functions: a sample counts once per
// distinct function on its stack.
const inclusive = new Map<string, number>()
for (const [id, micros] of selfMicros) {
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = (byId.get(at) as ProfileNode).callFrame
    const url = shortUrl(frame.url)
    if (!/^(dist\/)?(lib|plugins)\//.test(url)) continue
    const key = label(frame)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + micros)
  }
}

console.log(`${file}: ${(total / 1e6).toFixed(2)} s busy (${(idle / 1e6).toFixed(2)} s idle, not counted); shares of busy time`)
table('self time by function', selfByFunction)
table('self time by file or package', selfByFile)
table('inclusive time of lib/ and plugins/ functions', inclusive)
