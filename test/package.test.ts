// The package as a user gets it: `npm pack` (which builds dist/ through
// `prepare`), the tarball installed into a fresh consumer project (ESM,
// `module: nodenext`, `strict`, `skipLibCheck: false`) next to the OLDEST
// fastify the peer range claims, the README quick start type-checked and run
// verbatim, a misspelt payload field refused by the compiler, every `exports`
// entry imported and required, and the optional `ioredis` peer loaded only
// by `fastify-ws-router/redis`.
//
// npm runs with --prefer-offline against its ordinary cache: the first run
// downloads the consumer's packages, later runs reuse them.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { untrackedCommand } from './helpers/child-env.js'

const repo = fileURLToPath(new URL('..', import.meta.url))
const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
  name: string
  exports: Record<string, string | { types: string, default: string }>
  peerDependencies: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  devDependencies: Record<string, string>
}

/** Entry points that need an optional peer: they must fail with FST_WSR_MISSING_PEER without it. */
const optionalPeerOf: Record<string, string> = {
  './redis': 'ioredis'
}

/** The oldest fastify the peer range claims: the range must be `^5.x.y`, and 5.x.y is what the consumer gets. */
function oldestFastify (): string {
  const range = manifest.peerDependencies.fastify
  const match = /^\^(5\.\d+\.\d+)$/.exec(range ?? '')
  if (match === null) throw new Error(`peerDependencies.fastify should be a caret range on 5.x, got ${String(range)}`)
  return match[1] as string
}

interface Run { code: number | null, stdout: string, stderr: string }

async function run (command: string, args: string[], cwd: string, extra: Record<string, string | undefined> = {}): Promise<Run> {
  const cmd = untrackedCommand(command, args, extra)
  const child = spawn(cmd.command, cmd.args, { cwd, env: cmd.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const [code] = await once(child, 'close') as [number | null]
  return { code, stdout, stderr }
}

async function mustRun (command: string, args: string[], cwd: string): Promise<Run> {
  const result = await run(command, args, cwd)
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${String(result.code)}\n${result.stdout}\n${result.stderr}`)
  return result
}

const npmInstall = ['install', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock']

/** The first fenced block of `lang` after the heading `## title` in README.md, verbatim. */
function readmeBlock (title: string, lang: string): string {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8')
  const section = readme.split(/^## /m).find((part) => part.startsWith(title + '\n'))
  if (section === undefined) throw new Error(`README.md has no "## ${title}" section`)
  const block = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section)
  if (block === null) throw new Error(`README.md "## ${title}" has no \`\`\`${lang} block`)
  return block[1] as string
}

function filesUnder (dir: string): string[] {
  const found: string[] = []
  for (const name of readdirSync(dir)) {
    // Dependencies npm nested under the package are not part of it.
    if (name === 'node_modules') continue
    const path = join(dir, name)
    if (statSync(path).isDirectory()) found.push(...filesUnder(path))
    else found.push(path)
  }
  return found
}

function entryTargets (): Array<{ entry: string, specifier: string, types: string, code: string }> {
  return Object.entries(manifest.exports)
    .filter(([entry]) => entry !== './package.json')
    .map(([entry, target]) => {
      if (typeof target === 'string') throw new Error(`exports["${entry}"] has no types condition`)
      return { entry, specifier: entry === '.' ? manifest.name : manifest.name + entry.slice(1), types: target.types, code: target.default }
    })
}

const work = mkdtempSync(join(tmpdir(), 'fastify-ws-router-pack-'))
const consumer = join(work, 'consumer')
const installed = join(consumer, 'node_modules', manifest.name)
t.teardown(() => rmSync(work, { recursive: true, force: true }))

const fastifyVersion = oldestFastify()

/** Consumer files that must compile; misspelt.ts must not, with exactly one error. */
const quickStartFiles = ['quickstart.ts', 'testing.ts', 'entries.ts', 'misspelt.ts']

t.before(async () => {
  // No dist/ to start from: what the tarball holds, npm pack's `prepare` built.
  rmSync(join(repo, 'dist'), { recursive: true, force: true })
  await mustRun('npm', ['pack', '--pack-destination', work], repo)
  const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'))
  if (tarball === undefined) throw new Error('npm pack wrote no tarball')
  mkdirSync(consumer)
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  // The second compiler run (redis.ts, once ioredis is installed) reuses the
  // first one's results for the declaration files both programs share.
  const compilerOptions = { target: 'ES2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: false, outDir: 'out', incremental: true, tsBuildInfoFile: 'out/tsbuildinfo' }
  writeFileSync(join(consumer, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: quickStartFiles }))
  writeFileSync(join(consumer, 'tsconfig.redis.json'), JSON.stringify({ compilerOptions, files: ['redis.ts'] }))
  // What a TypeScript user of the quick start installs; no @types/ws, no ioredis.
  await mustRun('npm', [...npmInstall, join(work, tarball), `fastify@${fastifyVersion}`, '@sinclair/typebox',
    `typescript@${manifest.devDependencies.typescript ?? '5.9'}`, '@types/node@20'], consumer)
})

t.test('the tarball ships the built code with every entry point, and nothing else of the repository', async (t) => {
  const shipped = filesUnder(installed).map((path) => relative(installed, path))
  t.ok(shipped.includes('LICENSE'), 'LICENSE is shipped')
  t.ok(shipped.includes('CHANGELOG.md'), 'CHANGELOG.md is shipped')
  for (const { entry, types, code } of entryTargets()) {
    t.ok(existsSync(join(installed, types)), `exports["${entry}"].types ${types} is in the tarball`)
    t.ok(existsSync(join(installed, code)), `exports["${entry}"].default ${code} is in the tarball`)
  }
  t.same(shipped.filter((path) => /^(test|examples|bench|scripts)\//.test(path)), [], 'no tests, examples, benchmarks or scripts')
  t.same(shipped.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts')), [], 'no TypeScript sources')
  const maps = shipped.filter((path) => path.endsWith('.map'))
  t.ok(maps.length > 0, 'source maps are shipped')
  const pointingAway = maps.filter((path) => {
    const map = JSON.parse(readFileSync(join(installed, path), 'utf8')) as { sources: string[], sourcesContent?: Array<string | null> }
    return !map.sources.every((_, i) => typeof map.sourcesContent?.[i] === 'string')
  })
  t.same(pointingAway, [], `each of the ${maps.length} source maps carries the sources it points to`)
})

t.test('without the optional peers: the main entry loads, their entry points name the package to install', async (t) => {
  t.notOk(existsSync(join(consumer, 'node_modules/ioredis')), 'ioredis is not installed')
  const esm = await run(process.execPath, ['--input-type=module', '-e', `import('${manifest.name}').then((m) => console.log(typeof m.wsRouter))`], consumer)
  t.equal(esm.stdout.trim(), 'function', `import('${manifest.name}') works`, { output: esm.stderr })
  for (const [entry, peer] of Object.entries(optionalPeerOf)) {
    t.equal(manifest.peerDependenciesMeta?.[peer]?.optional, true, `${peer} is an optional peer`)
    const specifier = manifest.name + entry.slice(1)
    const imported = await run(process.execPath, ['--input-type=module', '-e',
      `import('${specifier}').then(() => console.log('loaded'), (err) => console.log(err.code + ': ' + err.message))`], consumer)
    t.match(imported.stdout, new RegExp(`^FST_WSR_MISSING_PEER: .*"${peer}".*npm install ${peer}`), `import('${specifier}') without ${peer}`)
    const required = await run(process.execPath, ['-e',
      `try { require('${specifier}'); console.log('loaded') } catch (err) { console.log(err.code + ': ' + err.message) }`], consumer)
    t.match(required.stdout, /^FST_WSR_MISSING_PEER: /, `require('${specifier}') without ${peer}`)
  }
  // The tracing option's peer (issue 13): loaded at registration, only when the option is set.
  t.equal(manifest.peerDependenciesMeta?.['@opentelemetry/api']?.optional, true, '@opentelemetry/api is an optional peer')
  t.notOk(existsSync(join(consumer, 'node_modules/@opentelemetry/api')), '@opentelemetry/api is not installed')
  const traced = await run(process.execPath, ['--input-type=module', '-e', `
const { default: Fastify } = await import('fastify')
const { wsRouter } = await import('${manifest.name}')
for (const tracing of [false, true]) {
  const app = Fastify()
  app.register(wsRouter, { environment: 'test', tracing })
  await app.ready().then(() => console.log('ready'), (err) => console.log(err.code + ': ' + err.message))
  await app.close()
}`], consumer)
  t.match(traced.stdout, /^ready\nFST_WSR_MISSING_PEER: .*"@opentelemetry\/api".*npm install @opentelemetry\/api/, 'tracing off registers; tracing on names the package to install', { output: traced.stderr })
})

t.test('CommonJS: require() of every entry point works (require(esm), no top-level await)', async (t) => {
  const plain = entryTargets().filter(({ entry }) => optionalPeerOf[entry] === undefined)
  writeFileSync(join(consumer, 'require.cjs'), `
const Fastify = require('fastify')
const entries = ${JSON.stringify(plain.map(({ specifier }) => specifier))}
const loaded = entries.map((specifier) => Object.keys(require(specifier)).length)
const app = Fastify()
app.register(require('fastify-ws-router'), { path: '/ws' })
app.ready().then(() => {
  console.log(JSON.stringify({ loaded, router: typeof app.wsRouter.on }))
  return app.close()
})
`)
  const result = await run(process.execPath, ['require.cjs'], consumer)
  t.equal(result.code, 0, 'the CommonJS consumer runs', { output: result.stderr })
  const out = JSON.parse(result.stdout) as { loaded: number[], router: string }
  t.ok(out.loaded.every((count) => count > 0), 'every entry point has exports')
  t.equal(out.router, 'function', 'the required plugin registers and decorates app.wsRouter')
})

t.test(`types on fastify ${fastifyVersion}, skipLibCheck: false, no extra install: the README compiles, a misspelt payload field does not`, async (t) => {
  t.equal(JSON.parse(readFileSync(join(consumer, 'node_modules/fastify/package.json'), 'utf8')).version, fastifyVersion, 'the consumer has the oldest claimed fastify')
  t.notOk(existsSync(join(installed, 'node_modules/fastify')), 'and only that copy: fastify is a peer, not a dependency')
  writeFileSync(join(consumer, 'quickstart.ts'), readmeBlock('Quick start', 'ts'))
  writeFileSync(join(consumer, 'testing.ts'), readmeBlock('Testing', 'ts'))
  // Every entry point without an optional peer must type-check for a consumer with no extra install.
  const plainEntries = entryTargets().filter(({ entry }) => optionalPeerOf[entry] === undefined)
  writeFileSync(join(consumer, 'entries.ts'), plainEntries.map(({ specifier }, i) => `import * as entry${i} from '${specifier}'\nexport { entry${i} }\n`).join(''))
  writeFileSync(join(consumer, 'misspelt.ts'), [
    "import Fastify from 'fastify'",
    "import { Type } from '@sinclair/typebox'",
    "import wsRouter from 'fastify-ws-router'",
    'const app = Fastify()',
    "await app.register(wsRouter, { path: '/ws' })",
    "app.wsRouter.on('echo', { schema: Type.Object({ text: Type.String() }) }, (payload) => ({ text: payload.txet }))",
    ''
  ].join('\n'))
  // One compiler run for all four files (tsc still writes out/ when misspelt.ts fails).
  const tsc = await run('npx', ['tsc', '-p', 'tsconfig.json'], consumer)
  const errors = tsc.stdout.split('\n').filter((line) => /error TS\d+/.test(line))
  t.equal(errors.length, 1, 'exactly one compile error: the README quick start, its testing example and every entry point compile', { output: tsc.stdout })
  t.match(errors[0] ?? '', /^misspelt\.ts\(6,\d+\): error TS(2339|2551): Property 'txet' does not exist on type '\{ text: string; \}'/,
    'the misspelt payload field fails against the payload type inferred from the schema')
  t.ok(existsSync(join(consumer, 'out/quickstart.js')) && existsSync(join(consumer, 'out/testing.js')), 'the README code is compiled')
})

t.test('the README quick start runs and gives the documented reply', async (t) => {
  const server = untrackedCommand(process.execPath, ['out/quickstart.js'], { PORT: '0', NODE_ENV: undefined, ENVIRONMENT: undefined, K_SERVICE: undefined })
  const child = spawn(server.command, server.args, { cwd: consumer, env: server.env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let logs = ''
  child.stdout.on('data', (chunk: Buffer) => { logs += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { logs += chunk.toString() })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('quick start did not listen:\n' + logs)), 15_000)
    child.stdout.on('data', () => {
      const listening = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(logs)
      if (listening !== null) { clearTimeout(timer); resolve(Number(listening[1])) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`quick start exited ${String(code)}:\n${logs}`)) })
  })

  // The frames the README documents: "→ request" then "← reply".
  const frames = readmeBlock('Quick start', 'json').split('\n').filter((line) => line.trim() !== '')
  const request = frames.find((line) => line.startsWith('→'))?.slice(1).trim()
  const documented = frames.find((line) => line.startsWith('←'))?.slice(1).trim()
  if (request === undefined || documented === undefined) throw new Error('the README quick start documents no → request and ← reply')
  const url = /ws:\/\/127\.0\.0\.1:3000(\/\S*?)`/.exec(readFileSync(join(repo, 'README.md'), 'utf8').split('## Quick start')[1] ?? '')?.[1]
  t.ok(url, 'the README names the URL to connect to')
  const ws = new WebSocket(`ws://127.0.0.1:${port}${url ?? '/ws'}`)
  t.teardown(() => ws.terminate())
  const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no reply')), 10_000)
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as Record<string, unknown>
      if (frame.type === 'connection_established') ws.send(request)
      else { clearTimeout(timer); resolve(frame) }
    })
    ws.once('error', reject)
  })
  const expected = JSON.parse(documented) as Record<string, unknown>
  t.type(reply.timestamp, 'number', 'the reply carries a timestamp')
  t.same({ ...reply, timestamp: 0 }, { ...expected, timestamp: 0 }, 'the reply is the one the README documents')
  ws.close()
  child.kill('SIGTERM')
  await once(child, 'exit')
})

t.test('the README Testing example passes (injectWS)', async (t) => {
  const result = await run(process.execPath, ['--test', 'out/testing.js'], consumer)
  t.equal(result.code, 0, 'node --test runs it', { output: result.stdout + result.stderr })
  t.match(result.stdout, /# pass 1\n/, 'its one test passes')
})

t.test('with ioredis installed, fastify-ws-router/redis type-checks (skipLibCheck: false) and loads', async (t) => {
  await mustRun('npm', [...npmInstall, `ioredis@${manifest.peerDependencies.ioredis ?? ''}`], consumer)
  writeFileSync(join(consumer, 'redis.ts'), [
    "import { RedisAdapter, type RedisAdapterOptions } from 'fastify-ws-router/redis'",
    "const options: RedisAdapterOptions = { redis: 'redis://127.0.0.1:6379', prefix: 'app:' }",
    'const adapter = new RedisAdapter(options)',
    'console.log(typeof adapter.instanceId)',
    ''
  ].join('\n'))
  const tsc = await run('npx', ['tsc', '-p', 'tsconfig.redis.json'], consumer)
  t.equal(tsc.code, 0, 'tsc accepts it', { output: tsc.stdout })
  const loaded = await run(process.execPath, ['out/redis.js'], consumer)
  t.equal(loaded.stdout.trim(), 'string', 'a RedisAdapter is built (lazily: no connection)', { output: loaded.stderr })
})
