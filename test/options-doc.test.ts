// The options as documented must be the options of the schema
// (lib/option-schema.ts), as errors-doc.test.ts does for error codes:
// docs/api.md's options table lists every option, in the schema's order,
// with the schema's default, and has a section per option; the nested
// defaults appear in their option's section; docs/environments.md's preset
// table shows the presets' values. Adding or changing an option without its
// docs fails here.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { optionProperties, optionsWith } from '../lib/option-schema.js'
import { cloudRunOverrides, presets, type EnvironmentName } from '../lib/environment.js'

const api = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8')
const environments = readFileSync(new URL('../docs/environments.md', import.meta.url), 'utf8')

const schemas = optionProperties as unknown as Record<string, Record<string, unknown>>
const names = Object.keys(schemas)

/** The rows of the first Markdown table after `heading`, as trimmed cells (a `\|` inside a cell is not a separator). */
function tableAfter (doc: string, heading: string): string[][] {
  const start = doc.indexOf(heading)
  if (start === -1) return []
  const lines = doc.slice(start).split('\n')
  const first = lines.findIndex((line) => line.startsWith('|'))
  const rows: string[][] = []
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim()))
  }
  return rows
}

/** A default as docs/api.md writes it: JavaScript literal syntax, objects with spaces inside the braces. */
function literal (value: unknown): string {
  if (typeof value === 'string') return `'${value}'`
  if (typeof value === 'object' && value !== null) {
    return `{ ${Object.entries(value).map(([key, inner]) => `${key}: ${literal(inner)}`).join(', ')} }`
  }
  return String(value)
}

/** The text of the `### \`name\`` section of docs/api.md, up to the next heading. */
function section (name: string): string | undefined {
  const match = new RegExp('^### `' + name + '`\\n([\\s\\S]*?)(?=^#{2,3} )', 'm').exec(api)
  return match?.[1]
}

const optionRows = tableAfter(api, '## Options')
const documented = optionRows.map(([option]) => /^\[`(\w+)`\]\(#(\w+)\)$/.exec(option ?? ''))

t.test('docs/api.md lists every option of the schema, in its order, and no other', async (t) => {
  t.ok(optionRows.length > 0, 'the options table is found')
  t.same(documented.map((match) => match?.[1]), names)
  for (const match of documented) {
    if (match === null) continue
    t.equal(match[2], match[1]?.toLowerCase(), `${match[1]} links to its own section`)
    t.ok(section(match[1] as string) !== undefined, `${match[1]} has a ### section`)
  }
})

t.test("each option's default in the table is the schema's", async (t) => {
  const constant = new Set(optionsWith(optionProperties, 'default'))
  const preset = new Set(optionsWith(optionProperties, 'preset'))
  const computed = new Set(optionsWith(optionProperties, 'computedDefault'))
  for (const [index, row] of optionRows.entries()) {
    const name = documented[index]?.[1] as string
    const cell = row[2] ?? ''
    const schema = schemas[name] as Record<string, unknown>
    if (constant.has(name)) {
      t.ok(cell.startsWith('`' + literal(schema.default) + '`'), `${name}: default ${literal(schema.default)} (docs: ${cell})`)
    } else if (preset.has(name)) {
      t.equal(cell, '*preset*', `${name}: from the preset`)
    } else if (computed.has(name)) {
      t.equal(cell, schema.computedDefault, `${name}: the schema's computedDefault text`)
    } else {
      t.match(cell, /^none\b/, `${name}: no default, the config holds undefined`)
    }
  }
})

/** A bound as the sections write it: `100 MiB`, `24 h`, `7 days`, `1 000 000`, `1000`. */
function bound (name: string, value: number): string {
  const units: Array<[number, string]> = name.endsWith('Bytes')
    ? [[1024 ** 3, ' GiB'], [1024 ** 2, ' MiB'], [1024, ' KiB']]
    : name.endsWith('Ms') ? [[24 * 3600_000, ' days'], [3600_000, ' h'], [60_000, ' min'], [1000, ' s']] : []
  for (const [size, unit] of units) {
    // One day is written `24 h`.
    if (value % size === 0 && value / size >= (unit === ' days' ? 2 : 1)) return `${value / size}${unit}`
  }
  return value >= 10_000 ? value.toLocaleString('en-US').replace(/,/g, ' ') : String(value)
}

t.test("each option's section states the schema's default and bounds", async (t) => {
  for (const name of names) {
    const schema = schemas[name] as Record<string, unknown>
    // The first paragraph, on one line: the type, the bounds and the default.
    const opening = (section(name) ?? '').trim().split('\n\n')[0]?.replace(/\s+/g, ' ') ?? ''
    if (schema.default !== undefined) t.ok(opening.includes('default `' + literal(schema.default) + '`'), `${name}: default ${literal(schema.default)} (docs: ${opening.slice(0, 120)})`)
    if (schema.preset === true) t.ok(opening.includes('default from the preset'), `${name}: default from the preset`)
    if (schema.type !== 'integer') continue
    const unit = name.endsWith('Ms') ? 'ms, ' : ''
    const range = schema.maximum === undefined
      ? `(${unit}${String(schema.minimum)} or more)`
      : `(${unit}${String(schema.minimum)} to ${bound(name, schema.maximum as number)})`
    t.ok(opening.includes(range), `${name}: ${range} (docs: ${opening.slice(0, 80)})`)
  }
})

t.test('nested defaults appear in their option\'s section', async (t) => {
  for (const name of names) {
    const inner = schemas[name] as { properties?: Record<string, Record<string, unknown>>, anyOf?: Array<{ properties?: Record<string, Record<string, unknown>> }> }
    const properties = inner.properties ?? inner.anyOf?.find((member) => member.properties !== undefined)?.properties
    if (properties === undefined) continue
    const text = section(name) ?? ''
    for (const [key, schema] of Object.entries(properties)) {
      if (schema.default === undefined) continue
      t.ok(text.includes('`' + key), `${name}.${key} is named in its section`)
      t.ok(text.includes(String(schema.default)), `${name}.${key}: default ${String(schema.default)} is stated in its section`)
    }
  }
})

t.test("docs/environments.md's preset table shows the presets", async (t) => {
  const rows = tableAfter(environments, '| setting |')
  const header = environments.split('\n').find((line) => line.startsWith('| setting |'))?.slice(1, -1).split('|').map((cell) => cell.trim()) ?? []
  const presetNames = optionsWith(optionProperties, 'preset')
  t.same(rows.map(([setting]) => setting), presetNames.map((name) => '`' + name + '`'), 'one row per preset option, in schema order')
  /** `30 000`, `0 (no limit)`, `` `true` ``, `` `warn` ``: the value before any remark, spaces and backticks removed. */
  const valueOf = (cell: string): string => cell.replace(/\s*\(.*\)$/, '').replace(/[`\s]/g, '')
  for (const row of rows) {
    const name = (row[0] ?? '').replace(/`/g, '') as keyof typeof cloudRunOverrides
    for (const [column, environment] of header.entries()) {
      if (!(environment in presets)) continue
      t.equal(valueOf(row[column] ?? ''), String(presets[environment as EnvironmentName][name]), `${name} in ${environment}`)
    }
    const cloudRun = row[header.indexOf('Cloud Run overrides')] ?? ''
    const override = cloudRunOverrides[name]
    if (override === undefined) t.equal(cloudRun, '(from the preset)', `${name}: no Cloud Run override`)
    else t.equal(valueOf(cloudRun), String(override), `${name} on Cloud Run`)
  }
})
