/**
 * What one idle connection keeps on the heap, by kind of object: the
 * difference between two V8 heap snapshots of a server (`npm run bench --
 * --skip-load --skip-churn --heap-snapshots`), divided by the number of
 * connections opened between them.
 *
 *   npx tsx bench/heap-diff.ts BEFORE.heapsnapshot LOADED.heapsnapshot CONNECTIONS [--top 25]
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

interface Snapshot {
  snapshot: { meta: { node_fields: string[], node_types: [string[], ...unknown[]] } }
  nodes: number[]
  strings: string[]
}

interface Tally { count: number, bytes: number }

/** Count and self size of every (type, name) of live objects. */
function tally (file: string): Map<string, Tally> {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = snap.snapshot.meta.node_fields
  const types = snap.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const out = new Map<string, Tally>()
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt] as number] ?? '?'
    let name = snap.strings[snap.nodes[i + nameAt] as number] ?? '?'
    // Strings, code and arrays are grouped by type: their "names" are contents.
    if (type !== 'object' && type !== 'closure') name = ''
    const key = name === '' ? `(${type})` : `${name} (${type})`
    const entry = out.get(key)
    const bytes = snap.nodes[i + sizeAt] as number
    if (entry === undefined) out.set(key, { count: 1, bytes })
    else {
      entry.count++
      entry.bytes += bytes
    }
  }
  return out
}

const { values, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true })
const [beforeFile, loadedFile, connectionsText] = positionals
if (beforeFile === undefined || loadedFile === undefined || connectionsText === undefined) {
  console.error('usage: npx tsx bench/heap-diff.ts BEFORE.heapsnapshot LOADED.heapsnapshot CONNECTIONS [--top N]')
  process.exit(2)
}
const connections = Number(connectionsText)
const before = tally(beforeFile)
const loaded = tally(loadedFile)
const rows: Array<{ key: string, count: number, bytes: number }> = []
let total = 0
for (const [key, after] of loaded) {
  const prior = before.get(key) ?? { count: 0, bytes: 0 }
  const bytes = (after.bytes - prior.bytes) / connections
  total += bytes
  rows.push({ key, count: (after.count - prior.count) / connections, bytes })
}
process.stdout.on('error', () => process.exit(0))
console.log(`${loadedFile} − ${beforeFile}, per connection (${connections}): ${total.toFixed(0)} bytes of self size`)
console.log('   bytes   objects  kind')
for (const row of rows.sort((a, b) => b.bytes - a.bytes).slice(0, Number(values.top))) {
  console.log(`${row.bytes.toFixed(0).padStart(8)} ${row.count.toFixed(2).padStart(9)}  ${row.key}`)
}
