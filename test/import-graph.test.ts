import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// Issue 9: the engine's shape, guarded. The import graph of lib/ and
// plugins/ (type-only imports included) has no cycle, and no part imports
// one it must not: nothing below the facade imports it, built-ins import
// neither each other nor engine internals, the wire codec does no I/O.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

function sources (dir: string): string[] {
  const out: string[] = []
  for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) out.push(...sources(path))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(path)
  }
  return out
}

/** Relative imports of a file (static `import`/`export … from`, type-only ones included), as repo paths. */
function importsOf (file: string): string[] {
  // Comments dropped first: an example in a doc comment is not an import.
  const text = readFileSync(join(root, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '')
  const found: string[] = []
  const clause = String.raw`(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+(?:\s*,\s*\{[^}]*\})?)`
  const pattern = new RegExp(String.raw`^\s*(?:(?:import|export)\s+${clause}\s+from\s+|import\s+)'(\.{1,2}\/[^']+)'`, 'gm')
  for (const match of text.matchAll(pattern)) {
    const target = (match[1] as string).replace(/\.js$/, '.ts')
    found.push(relative(root, resolve(root, dirname(file), target)))
  }
  return found
}

const files = [...sources('lib'), ...sources('plugins')].sort()
const graph = new Map(files.map((file) => [file, importsOf(file)]))

/** Every elementary cycle found by a depth-first walk (each reported once, from its smallest file). */
function cycles (): string[][] {
  const found = new Map<string, string[]>()
  const walk = (start: string, at: string, path: string[], onPath: Set<string>): void => {
    for (const next of graph.get(at) ?? []) {
      if (next === start) {
        const cycle = [...path]
        const key = [...cycle].sort().join(' ')
        if (!found.has(key)) found.set(key, cycle)
      } else if (!onPath.has(next) && next > start) {
        onPath.add(next)
        walk(start, next, [...path, next], onPath)
        onPath.delete(next)
      }
    }
  }
  for (const file of files) walk(file, file, [file], new Set([file]))
  return [...found.values()]
}

t.test('every relative import resolves to a source file', async (t) => {
  const known = new Set(files)
  const dangling = [...graph].flatMap(([file, targets]) => targets.filter((target) => !known.has(target)).map((target) => `${file} → ${target}`))
  t.same(dangling, [])
})

t.test('no import cycle in lib/ and plugins/, type-only imports included', async (t) => {
  t.same(cycles().map((cycle) => cycle.join(' → ')), [])
})

/** Forbidden directions: a file matching `from` may not import a file matching `to`. */
const rules: Array<{ why: string, from: RegExp, to: RegExp, except?: RegExp }> = [
  { why: 'nothing in lib/ imports the plugin wiring', from: /^lib\//, to: /^plugins\//, except: /^lib\/index\.ts$/ },
  { why: 'nothing below the facade imports it (type-only included)', from: /^lib\/(?!index\.ts$|router\.ts$)/, to: /^lib\/router\.ts$/ },
  { why: 'only the facade and the wiring reach the engine', from: /^lib\/(?!index\.ts$|router\.ts$)/, to: /^lib\/engine\.ts$/ },
  { why: 'the parts of the engine never import their owner', from: /^lib\/(core|outbound|closing|error-frames|fanout|liveness|shutdown|socket-events|invoke|context|dispatch|jsonrpc|batch|connection|send)\.ts$/, to: /^lib\/(router|engine)\.ts$|^lib\/handlers\// },
  { why: 'the connection part never imports the pipeline', from: /^lib\/(core|outbound|closing|error-frames|liveness|shutdown|connection|send|fanout)\.ts$/, to: /^lib\/(dispatch|context|jsonrpc|batch|invoke|registry|socket-events)\.ts$/ },
  { why: 'the wire codec is pure: no socket, no engine state', from: /^lib\/(envelope|id-scan|errors)\.ts$/, to: /^lib\/(?!envelope\.ts$|errors\.ts$)/ },
  { why: 'the error accounting is pure', from: /^lib\/(error-run|rate-limit|deadlines)\.ts$/, to: /^lib\// },
  { why: 'adapters know the adapter contract, errors and the optional-peer loader only', from: /^lib\/adapters\//, to: /^lib\/(?!adapter\.ts$|errors\.ts$|peer-dependency\.ts$|adapters\/)/ },
  { why: 'the browser client imports nothing of the server, only the shared contracts', from: /^lib\/client\//, to: /^lib\/(?!client\/|contracts\.ts$|builtin-contract\.ts$)/ },
  { why: 'a built-in never imports another built-in', from: /^lib\/handlers\/(?!index\.ts$)/, to: /^lib\/handlers\/(?!membership\.ts$)/ },
  // send.ts is allowed for its public result types (SendResult), which lib/index.ts exports.
  { why: 'a built-in never imports engine internals: it is given a BuiltinHost', from: /^lib\/handlers\//, to: /^lib\/(router|engine|core|dispatch|connection|context|invoke|outbound|closing|error-frames|fanout|liveness|shutdown|socket-events|jsonrpc|rate-limit|deadlines|error-run|stats|batch)\.ts$|^lib\/delivery\// },
  // Issue 12 (resume): the delivery part sits on the socket primitives; it calls the engine back only through the DeliveryHost it declares.
  // adapter.ts: the adapter contract's types (FanoutTarget, for the fan-outs a cross-instance resume remembers).
  { why: 'the delivery part imports the socket primitives (connection, send), wire and identity only, never the engine, its parts or the pipeline', from: /^lib\/delivery\//, to: /^lib\/(?!delivery\/|connection\.ts$|send\.ts$|identity\.ts$|envelope\.ts$|errors\.ts$|peer-dependency\.ts$|adapter\.ts$|adapters\/redis-clients\.ts$)/ },
  // Issue 12 (resume-redis): the Redis store shares the Redis adapter's connection options (adapters/redis-clients.ts), one way.
  { why: 'resume stores know the store contract, errors, the optional-peer loader and the Redis connection options only', from: /^lib\/delivery\/.*store\.ts$/, to: /^lib\/(?!delivery\/store\.ts$|errors\.ts$|peer-dependency\.ts$|adapters\/redis-clients\.ts$)/ },
  { why: 'the pipeline never reaches the delivery part: numbering happens where frames are written', from: /^lib\/(dispatch|context|jsonrpc|batch|invoke|registry)\.ts$/, to: /^lib\/delivery\// }
]

t.test('no forbidden import direction', async (t) => {
  for (const rule of rules) {
    const broken: string[] = []
    for (const [file, targets] of graph) {
      if (!rule.from.test(file) || rule.except?.test(file) === true) continue
      for (const target of targets) if (rule.to.test(target)) broken.push(`${file} → ${target}`)
    }
    t.same(broken, [], rule.why)
  }
})
