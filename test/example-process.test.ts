// Issue 10 §3: the example as `npm start` runs it (tsx examples/server.ts), in
// a real process: SIGINT and SIGTERM close every client with 1001 and exit 0
// within shutdownGraceMs + 1 s, a peer that stalls included.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { connect, type TestClient } from './helpers/client.js'
import { untrackedNode } from './helpers/child-env.js'
import { stalledPeer } from './helpers/stalled-peer.js'
import { environmentPresets } from '../lib/index.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const tsxCli = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url))
const GRACE = environmentPresets.development.shutdownGraceMs

interface Example {
  proc: ChildProcess
  port: number
  output: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>
}

/** `npm start`'s command (`tsx examples/server.ts`), on a spare port, with this environment only. */
async function startExample (): Promise<Example> {
  const node = untrackedNode([tsxCli, 'examples/server.ts'], { PORT: '0', HOST: '127.0.0.1', NODE_ENV: 'development', LOG_LEVEL: 'info' })
  const proc = spawn(node.command, node.args, { cwd: root, env: node.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null, at: number }>((resolve) => {
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }))
  })
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match !== null) resolve(Number(match[1]))
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    exited.then(({ code }) => reject(new Error(`example exited early (${code}): ${output}`)), reject)
  })
  return { proc, port, output: () => output, exited }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  t.test(`${signal}: every client gets 1001, the process exits 0 within shutdownGraceMs + 1 s`, async (t) => {
    const example = await startExample()
    t.teardown(() => { if (example.proc.exitCode === null && example.proc.signalCode === null) example.proc.kill('SIGKILL') })
    const base = `ws://127.0.0.1:${example.port}`
    const clients: TestClient[] = [
      await connect(`${base}/ws?user=alice`),
      await connect(`${base}/ws?user=bob`),
      await connect(`${base}/rpc?user=carol`)
    ]
    await clients[0]?.next('connection_established')
    await clients[1]?.next('connection_established')
    // The stalled peer makes the drain last the whole grace: SIGTERM only, to keep the file short.
    const stalled = signal === 'SIGTERM' ? await stalledPeer(example.port) : undefined

    const sentAt = Date.now()
    example.proc.kill(signal)
    const closes = await Promise.all(clients.map(async (client) => (await client.closed).code))
    const exit = await example.exited
    t.same(closes, [1001, 1001, 1001], 'every client (both routers) was closed with 1001')
    t.equal(exit.code, 0, `exit code 0 (output: ${example.output().slice(-500)})`)
    t.ok(exit.at - sentAt <= GRACE + 1000, `exited ${exit.at - sentAt} ms after ${signal} (bound ${GRACE + 1000} ms)`)
    t.notMatch(example.output(), /TypeError|shutdown failed|did not finish in time/, 'no error on the way out')
    stalled?.destroy()
  })
}
