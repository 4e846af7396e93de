import t from 'tap'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { decodeFrame } from '../lib/envelope.js'
import { looksLikeJsonRpc } from '../lib/jsonrpc.js'
import { buildHostileApp, registries, type HostileProfile } from './helpers/hostile-app.js'
import { driveConnection, driveRaw, violations } from './helpers/hostile-client.js'
import { expectedIds, hostileFrame, IdSource, idKey, rawScenario, render } from './helpers/hostile.js'
import { logSink, type LogLine } from './helpers/server.js'
import { connect } from './helpers/client.js'

/**
 * The soak's hostile-frame generators (test/helpers/hostile.ts) as quick,
 * seeded property tests. A failure prints fast-check's seed and path:
 * rerun with FC_SEED=<seed> to get the same cases (and the shrunk
 * counterexample). `npm run soak` runs the same generators a million times.
 */
const SEED = Number(process.env.FC_SEED ?? 20261129)
t.comment(`fast-check seed ${SEED} (FC_SEED=<n> to replay another)`)

/** Error lines the hostile app's own handlers cause on purpose. */
const PURPOSEFUL = new Set(['handler failed on purpose', 'method failed on purpose', 'json-rpc method failed'])

interface Running {
  app: FastifyInstance
  port: number
  url: string
  errors: LogLine[]
}

async function start (profile: HostileProfile): Promise<Running> {
  const sink = logSink()
  const app = await buildHostileApp(profile, { level: 'error', stream: sink.stream })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, url: `ws://127.0.0.1:${address.port}/ws`, errors: sink.lines }
}

function unexpectedErrors (server: Running): LogLine[] {
  return server.errors.filter((line) => !PURPOSEFUL.has(line.msg) && !PURPOSEFUL.has(String((line.err as { message?: string } | undefined)?.message)))
}

t.test('the oracle follows protocol.md on frames written by hand', async (t) => {
  const owed = (data: string | Buffer, protocol: 'auto' | 'jsonrpc' = 'auto', binary = false): unknown => expectedIds({ kind: 'hand', data, binary }, { protocol })
  t.same(owed('{"type":"ping","id":1}'), { close: null, ids: ['1'] }, 'an envelope with a number id')
  t.same(owed('{"type":"ping","id":"a"}'), { close: null, ids: ['"a"'] }, 'an envelope with a string id')
  t.same(owed('{"type":"ping","id":1.5}'), { close: null, ids: [] }, 'an envelope id that is not a safe integer is not readable')
  t.same(owed(`{"type":"ping","id":"${'x'.repeat(129)}"}`), { close: null, ids: [] }, 'an envelope id of 129 characters is not readable')
  t.same(owed('{"type":5,"id":7}'), { close: null, ids: ['7'] }, 'a bad type still owes the id')
  t.same(owed('{"type":"x","id":8,"payload":{"__proto__":{"admin":true}}}'), { close: null, ids: ['8'] }, 'a forbidden key owes the id')
  t.same(owed('{"type":"x","id":10,"payload":{"n":1e400}}'), { close: null, ids: ['10'] }, 'a non-finite number owes the id')
  t.same(owed('not json'), { close: null, ids: [] }, 'bad JSON owes nothing')
  t.same(owed('{"type":"ping","id":1}', 'auto', true), { close: null, ids: [] }, 'a binary frame owes nothing')
  t.same(owed(Buffer.from([0x7B, 0xFF, 0x7D])), { close: 1007, ids: [] }, 'invalid UTF-8 owes a 1007 close')
  t.same(owed('{"type":"x","pad":"' + 'p'.repeat(70_000) + '","id":1}'), { close: 1009, ids: [] }, 'a frame over 64 KiB owes a 1009 close')
  t.same(owed('{"jsonrpc":"2.0","method":"m","id":1.5}'), { close: null, ids: ['1.5'] }, 'a JSON-RPC id may be any finite number')
  t.same(owed('{"jsonrpc":"2.0","method":"m"}'), { close: null, ids: [] }, 'a notification owes nothing')
  t.same(owed('{"jsonrpc":"2.0","method":"m","id":null}'), { close: null, ids: [] }, 'a null JSON-RPC id is not tracked')
  t.same(owed('[{"jsonrpc":"2.0","method":"m","id":1},{"foo":"boo","id":"b"},5,{"jsonrpc":"2.0","method":"n"}]'), { close: null, ids: ['1', '"b"'], batch: true }, 'a JSON-RPC batch owes each request id, invalid requests included')
  t.same(owed('{"type":"ping","id":3}', 'jsonrpc'), { close: null, ids: ['3'] }, 'an envelope on a jsonrpc route is an invalid request with its id')
  t.same(owed('[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"id":1}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]'), { close: null, ids: [] }, 'a too deep array owes nothing')
})

t.test('decoder: never throws, salvages exactly the ids the protocol calls readable, refuses every spelling of a forbidden key', async (t) => {
  const ids = new IdSource('p', 1_000_000)
  let checked = 0
  fc.assert(fc.property(hostileFrame({ closers: true }), (template) => {
    const frame = render(template, ids)
    if (frame.binary || typeof frame.data !== 'string') return
    const expectation = expectedIds(frame, { protocol: 'auto' })
    if (expectation.close !== null) return
    const decoded = decodeFrame(frame.data, 32)
    let parsed: unknown
    try { parsed = JSON.parse(frame.data.replace(/^\uFEFF/, '')) } catch {}
    // JSON-RPC frames take another path after the safety checks; their ids are checked on the wire below.
    if (decoded.ok && looksLikeJsonRpc(parsed)) return
    if (!decoded.ok && decoded.code === 'INVALID_MESSAGE' && looksLikeJsonRpc(parsed)) return
    checked++
    const salvaged = decoded.id === undefined ? [] : [idKey(decoded.id)]
    if (JSON.stringify(salvaged) !== JSON.stringify(expectation.ids)) {
      throw new Error(`decoder id ${JSON.stringify(salvaged)} but the protocol says ${JSON.stringify(expectation.ids)} for ${frame.kind}: ${frame.data.slice(0, 300)}`)
    }
    if (template.kind.startsWith('prototype-key') && template.mutation === null && (decoded.ok || decoded.code !== 'FORBIDDEN_KEY')) {
      throw new Error(`a forbidden key passed as ${decoded.ok ? 'ok' : decoded.code}: ${frame.data.slice(0, 300)}`)
    }
  }), { seed: SEED, numRuns: 4000 })
  t.ok(checked > 1000, `${checked} envelope frames compared with the protocol's rule`)
})

t.test('hostile frames over real connections: every readable id answered, or a documented close', async (t) => {
  const servers = { default: await start('default'), fuzz: await start('fuzz'), rpc: await start('rpc') }
  t.teardown(async () => { await Promise.all(Object.values(servers).map((server) => server.app.close())) })
  let connection = 0
  let frames = 0
  let answered = 0
  let owed = 0
  let rateLimitedBatch = 0
  const closes = new Map<string, number>()
  await fc.assert(fc.asyncProperty(
    fc.array(hostileFrame({ closers: true }), { minLength: 1, maxLength: 40 }),
    fc.constantFrom<HostileProfile>('fuzz', 'fuzz', 'default', 'rpc'),
    fc.integer({ min: 1, max: 40 }),
    async (templates, profile, chunk) => {
      const ids = new IdSource(`c${++connection}-`, connection * 1000)
      const wire = templates.map((template) => render(template, ids))
      const protocol = profile === 'rpc' ? 'jsonrpc' : 'auto'
      const report = await driveConnection(servers[profile].url, wire, { protocol, chunk })
      frames += report.sent
      answered += report.answered
      owed += report.expected
      rateLimitedBatch += report.rateLimitedBatch.length
      const label = `${profile}:${report.close?.code ?? 'client'}`
      closes.set(label, (closes.get(label) ?? 0) + 1)
      if (report.stalled) throw new Error(`${profile}: the sentinel was not answered on an open connection`)
      const missing = violations(report)
      if (missing.length > 0) throw new Error(`${profile}: ${missing.length} ids unanswered (${JSON.stringify(missing.slice(0, 5))}), close ${JSON.stringify(report.close)}`)
      // Only the fuzz and rpc profiles never close for other reasons (rate limit, consecutive errors).
      if (profile !== 'default' && report.expectedClose !== null && report.close?.code !== report.expectedClose) {
        throw new Error(`${profile}: expected close ${report.expectedClose}, got ${JSON.stringify(report.close)}`)
      }
    }
  ), { seed: SEED, numRuns: 300 })
  t.comment(`${frames} frames on ${connection} connections, ${answered} ids answered, ${rateLimitedBatch} requests of rate-limited JSON-RPC batches unanswered (documented limit); closes ${JSON.stringify(Object.fromEntries(closes))}`)
  t.ok(frames > 1000, `${frames} hostile frames sent`)
  t.ok(owed > 800, `${owed} ids owed by the oracle (sentinels aside): it owes ids, it does not only excuse them`)
  const builtins = servers.fuzz.app.wsRouter.getStats().builtins
  t.comment(`built-ins reached on fuzz: ${JSON.stringify(builtins)}`)
  t.ok((builtins['agent.started'] ?? 0) > 0, 'agent runs were started among the hostile frames, and are released below')
  for (const [profile, server] of Object.entries(servers)) {
    t.same(unexpectedErrors(server), [], `${profile}: no error line but the handlers' own`)
    const fresh = await connect(server.url)
    if (profile === 'rpc') {
      fresh.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'sum', params: [1, 2], id: 'fresh' }))
      const answer = await new Promise<string>((resolve) => fresh.ws.once('message', (data) => resolve(data.toString())))
      t.same(JSON.parse(answer), { jsonrpc: '2.0', result: 3, id: 'fresh' }, 'rpc: a fresh client is served afterwards')
    } else {
      fresh.send({ type: 'echo', id: 'fresh', payload: { text: 'still here' } })
      t.same((await fresh.next('echo_result')).payload, { text: 'still here' }, `${profile}: a fresh client is served afterwards`)
    }
    fresh.ws.terminate()
    await t.resolves(waitUntilEmpty(server.app), `${profile}: every connection released`)
  }
})

t.test('the documented limit: a JSON-RPC batch refused by the rate limit on an auto route gets one error without an id', async (t) => {
  const server = await start('default')
  t.teardown(() => server.app.close())
  // 250 pings at once use up the burst of 200; the batch after them is refused before it is told apart.
  const pings = Array.from({ length: 250 }, (_, i) => ({ kind: 'ping', binary: false, data: JSON.stringify({ type: 'ping', id: `p${i}` }) }))
  const batch = { kind: 'jsonrpc-batch', binary: false, data: JSON.stringify([{ jsonrpc: '2.0', method: 'sum', params: [1, 2], id: 'b1' }]) }
  const report = await driveConnection(server.url, [...pings, batch], { protocol: 'auto', chunk: 300, answerTimeoutMs: 1000 })
  t.equal(report.rateLimitedWithoutId, true, 'an id-less RATE_LIMITED came back')
  t.same(report.rateLimitedBatch.map((u) => u.key), ['"b1"'], "the batch's request is counted apart, as the documented limit")
  t.same(report.unanswered, [], 'every other id was answered (the refused pings with RATE_LIMITED and their ids)')
})

t.test('byte-level frames on raw TCP: the documented close code, earlier messages answered, the server unharmed', async (t) => {
  const servers = { default: await start('default'), fuzz: await start('fuzz') }
  t.teardown(async () => { await Promise.all(Object.values(servers).map((server) => server.app.close())) })
  let n = 0
  const kinds = new Map<string, number>()
  await fc.assert(fc.asyncProperty(
    rawScenario(),
    fc.constantFrom<'default' | 'fuzz'>('default', 'fuzz'),
    fc.integer({ min: 1, max: 300 }),
    async (built, profile, writeChunk) => {
      const scenario = built.build(new IdSource(`r${++n}-`, 0))
      kinds.set(scenario.kind.replace(/.*\+/, ''), (kinds.get(scenario.kind.replace(/.*\+/, '')) ?? 0) + 1)
      const report = await driveRaw(servers[profile].port, '/ws', scenario, writeChunk)
      const describe = `${scenario.kind} on ${profile}, written ${writeChunk} bytes at a time`
      // With no bad frame the client ends with its own close 1000, which the server echoes.
      const wantClose = scenario.close ?? 1000
      if (report.close !== wantClose) throw new Error(`${describe}: close ${String(report.close)} (ended without close: ${String(report.endedWithoutClose)}), expected ${wantClose}`)
      if (scenario.close === null && !report.sentinelAnswered) throw new Error(`${describe}: the sentinel after valid fragmented messages got no answer`)
      const missing = scenario.ids.filter((key) => !report.answered.has(key))
      if (missing.length > 0) throw new Error(`${describe}: messages before the bad frame not answered: ${missing.join(', ')}`)
    }
  ), { seed: SEED, numRuns: 250 })
  t.comment(`raw scenarios by last frame: ${JSON.stringify(Object.fromEntries(kinds))}`)
  for (const [profile, server] of Object.entries(servers)) {
    t.same(unexpectedErrors(server), [], `${profile}: no error line`)
    const fresh = await connect(server.url)
    fresh.send({ type: 'ping', id: 'fresh' })
    t.equal((await fresh.next('pong')).id, 'fresh', `${profile}: a fresh client is served afterwards`)
    fresh.ws.terminate()
    await t.resolves(waitUntilEmpty(server.app), `${profile}: every connection released`)
  }
})

async function waitUntilEmpty (app: FastifyInstance): Promise<void> {
  const deadline = Date.now() + 5000
  for (;;) {
    const left = registries(app)
    if (Object.values(left).every((n) => n === 0)) return
    if (Date.now() > deadline) throw new Error(`registries not empty: ${JSON.stringify(left)}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
