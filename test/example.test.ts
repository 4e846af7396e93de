// The example server (examples/app.ts) over real sockets: JWT authentication
// before the upgrade, the development-only demo identity, the production
// start-up check, origins, and the `npm run token` script.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { createSigner } from 'fast-jwt'
import { buildApp } from '../examples/app.js'
import { DEV_AUTH_SECRET } from '../examples/auth.js'
import { logSink } from './helpers/server.js'
import WebSocket from 'ws'
import { connect, tryUpgrade } from './helpers/client.js'
import { untrackedNode } from './helpers/child-env.js'
import { mustRunRedisTests, redisUnavailableReason, startRedis } from './helpers/redis.js'

const SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
const OTHER_SECRET = 'another-secret-0123456789-abcdefghijklmnopqrstuvw'
const STATS_TOKEN = 'stats-token-0123456789'
// Production needs the browser origins too (issue 10): a foreign page is never let in by default.
const PRODUCTION = { NODE_ENV: 'production', AUTH_SECRET: SECRET, ALLOWED_ORIGINS: 'https://app.example.com', STATS_TOKEN, LOG_LEVEL: 'info' }
const DEVELOPMENT = { NODE_ENV: 'development', LOG_LEVEL: 'info' }

function sign (secret: string, claims: Record<string, unknown>, options: { expiresIn?: number, clockTimestamp?: number } = { expiresIn: 60_000 }): string {
  return createSigner({ key: secret, algorithm: 'HS256', ...options })(claims)
}

interface Running {
  app: FastifyInstance
  url: string
  /** Every log line so far, as JSON text. */
  logs: () => string[]
}

/** Build the example with this environment (nothing from process.env) and listen on a spare port. */
async function start (t: { teardown: (fn: () => unknown) => void }, env: NodeJS.ProcessEnv): Promise<Running> {
  const sink = logSink()
  const app = await buildApp({ ...env }, { logStream: sink.stream })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, url: `ws://127.0.0.1:${address.port}/ws`, logs: () => sink.lines.map((line) => JSON.stringify(line)) }
}

async function userIdOf (url: string, options: Parameters<typeof connect>[1] = {}): Promise<string> {
  const client = await connect(url, options)
  try {
    const hello = await client.next('connection_established')
    return hello.payload.userId as string
  } finally {
    client.ws.terminate()
  }
}

t.test('production: a valid token connects as its subject, from every token source', async (t) => {
  const server = await start(t, PRODUCTION)
  const token = sign(SECRET, { sub: 'alice' })
  t.equal(await userIdOf(server.url, { headers: { authorization: `Bearer ${token}` } }), 'alice', 'Authorization: Bearer')
  t.equal(await userIdOf(`${server.url}?token=${token}`), 'alice', '?token=')
  const byProtocol = await tryUpgrade(server.url, {}, ['bearer', token])
  t.equal(byProtocol.status, 101, 'Sec-WebSocket-Protocol: bearer, <token>')
  t.equal(byProtocol.protocol, 'bearer', 'the server answers "bearer", never the token')
  t.equal(await userIdOf(`${server.url}?user=mallory`, { headers: { authorization: `Bearer ${token}` } }), 'alice', '?user= never overrides a token')

  const client = await connect(server.url, { headers: { authorization: `Bearer ${token}` } })
  client.send({ type: 'whoami', id: 1 })
  t.equal((await client.next('whoami_result')).payload.userId, 'alice', 'handlers see the user id')
  client.send({ type: 'echo', id: 2, payload: { text: 'hi' } })
  t.same((await client.next('echo_result')).payload, { text: 'hi' })
  client.ws.terminate()

  for (const line of server.logs()) t.notOk(line.includes(token), 'no log line holds the token')
})

t.test('production: bad tokens and no token get HTTP 401 before the upgrade', async (t) => {
  const server = await start(t, PRODUCTION)
  const bearer = (token: string): { headers: Record<string, string> } => ({ headers: { authorization: `Bearer ${token}` } })
  const expired = sign(SECRET, { sub: 'alice' }, { expiresIn: 60_000, clockTimestamp: Date.now() - 2 * 60 * 60 * 1000 })
  const foreign = sign(OTHER_SECRET, { sub: 'alice' })
  const devSigned = sign(DEV_AUTH_SECRET, { sub: 'alice' })
  const noExpiry = sign(SECRET, { sub: 'alice' }, {})
  const noSubject = sign(SECRET, { name: 'alice' })
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: 'alice', exp: Math.floor(Date.now() / 1000) + 600 })}.`

  const cases: Array<[string, Awaited<ReturnType<typeof tryUpgrade>>]> = [
    ['an expired token', await tryUpgrade(server.url, bearer(expired))],
    ['a token signed with another secret', await tryUpgrade(server.url, bearer(foreign))],
    ['a token signed with the development secret', await tryUpgrade(`${server.url}?token=${devSigned}`)],
    ['a token without exp', await tryUpgrade(server.url, bearer(noExpiry))],
    ['a token without sub', await tryUpgrade(server.url, bearer(noSubject))],
    ['an unsigned (alg: none) token', await tryUpgrade(server.url, bearer(unsigned))],
    ['a malformed token', await tryUpgrade(server.url, {}, ['bearer', 'not.a.jwt'])]
  ]
  for (const [what, outcome] of cases) {
    t.equal(outcome.status, 401, `${what} → 401`)
    t.same(outcome.body, { statusCode: 401, code: 'AUTH_FAILED', error: 'Invalid credentials' }, `${what}: the refusal body`)
  }
  const none = await tryUpgrade(server.url)
  t.equal(none.status, 401, 'no token → 401')
  t.equal(none.body.code, 'AUTH_REQUIRED')
  const demo = await tryUpgrade(`${server.url}?user=alice`)
  t.equal(demo.status, 401, 'no demo identity in production')

  const stats = (await server.app.inject({ url: '/stats', headers: { authorization: `Bearer ${STATS_TOKEN}` } })).json() as { ws: { connections: { open: number }, refused: Record<string, number> } }
  t.equal(stats.ws.connections.open, 0, 'no socket was adopted')
  const refused = stats.ws.refused
  t.same(refused, { AUTH_FAILED: cases.length, AUTH_REQUIRED: 2 })
  const reasons = server.logs().filter((line) => line.includes('websocket token refused')).map((line) => JSON.parse(line).reason as string)
  t.ok(reasons.includes('FAST_JWT_EXPIRED'), `the log says why (${reasons.join(', ')})`)
  for (const token of [expired, foreign, devSigned, unsigned]) {
    t.notOk(server.logs().some((line) => line.includes(token)), 'no log line holds a refused token')
  }
})

t.test('REDIS_URL and REDIS_CLUSTER_NODES together are refused, saying so', async (t) => {
  await t.rejects(buildApp({ REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: '127.0.0.1:2', LOG_LEVEL: 'silent' }), /REDIS_URL or REDIS_CLUSTER_NODES, not both/)
  await t.rejects(buildApp({ REDIS_CLUSTER_NODES: '127.0.0.1', LOG_LEVEL: 'silent' }), /not "host:port"/, 'a seed without its port')
})

t.test('production: buildApp refuses to start without AUTH_SECRET, saying so', async (t) => {
  await t.rejects(buildApp({ NODE_ENV: 'production', LOG_LEVEL: 'silent' }), /AUTH_SECRET is not set/)
  await t.rejects(buildApp({ ENVIRONMENT: 'production', LOG_LEVEL: 'silent' }), /AUTH_SECRET is not set/, 'ENVIRONMENT=production too')
  await t.rejects(buildApp({ NODE_ENV: 'production', AUTH_SECRET: ' ', LOG_LEVEL: 'silent' }), /AUTH_SECRET is not set/, 'a blank secret is no secret')
  await t.rejects(buildApp({ NODE_ENV: 'production', AUTH_SECRET: 'short', LOG_LEVEL: 'silent' }), /AUTH_SECRET is too short/)
})

t.test('development: ?user= works without a token; a token presented is verified', async (t) => {
  const server = await start(t, DEVELOPMENT)
  t.equal(await userIdOf(`${server.url}?user=alice`), 'alice', '?user=alice')
  t.equal((await tryUpgrade(server.url)).status, 401, 'neither token nor user → 401')
  t.equal((await tryUpgrade(`${server.url}?user=${encodeURIComponent('not a name!')}`)).status, 401, 'an invalid demo name → 401')
  const devToken = sign(DEV_AUTH_SECRET, { sub: 'bob' })
  t.equal(await userIdOf(server.url, { headers: { authorization: `Bearer ${devToken}` } }), 'bob', 'the development secret signs valid tokens')
  const expired = sign(DEV_AUTH_SECRET, { sub: 'bob' }, { expiresIn: 1000, clockTimestamp: Date.now() - 60_000 })
  t.equal((await tryUpgrade(`${server.url}?user=alice&token=${expired}`)).status, 401, 'a bad token is refused even with ?user=')
})

t.test('origins: development defaults, ALLOWED_ORIGINS, foreign Origin → 403', async (t) => {
  const dev = await start(t, DEVELOPMENT)
  const origin = async (url: string, value: string): Promise<{ status: number, body: any }> => await tryUpgrade(url, { headers: { origin: value } })
  t.equal((await origin(`${dev.url}?user=a`, 'http://localhost:3000')).status, 101, 'http://localhost:3000 by default')
  t.equal((await origin(`${dev.url}?user=a`, 'http://127.0.0.1:3000')).status, 101, 'http://127.0.0.1:3000 by default')
  const foreign = await origin(`${dev.url}?user=a`, 'https://evil.example')
  t.equal(foreign.status, 403, 'a foreign Origin → 403')
  t.same(foreign.body, { statusCode: 403, code: 'ORIGIN_FORBIDDEN', error: 'Origin not allowed' })
  t.equal((await origin(`${dev.url}?user=a`, 'http://localhost:3000.evil.example')).status, 403, 'a look-alike host → 403')
  t.equal((await tryUpgrade(`${dev.url}?user=a`)).status, 101, 'no Origin (a non-browser client) is let through')

  const prod = await start(t, { ...PRODUCTION, ALLOWED_ORIGINS: 'https://app.example.com, https://*.example.org' })
  const token = sign(SECRET, { sub: 'alice' })
  t.equal((await origin(`${prod.url}?token=${token}`, 'https://app.example.com')).status, 101, 'an origin from ALLOWED_ORIGINS')
  t.equal((await origin(`${prod.url}?token=${token}`, 'https://chat.example.org')).status, 101, 'a wildcard entry')
  t.equal((await origin(`${prod.url}?token=${token}`, 'http://localhost:3000')).status, 403, 'no development default once the list is set')
  t.equal((await origin(`${prod.url}?token=${token}`, 'https://evil.example')).status, 403, 'a foreign Origin → 403 in production')
})

const root = fileURLToPath(new URL('..', import.meta.url))

/** Run `examples/token.ts` as `npm run token` does (through tsx), with this environment only. */
async function runTokenScript (args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const node = untrackedNode(['--import', 'tsx', 'examples/token.ts', ...args])
    const child = spawn(node.command, node.args, {
      cwd: root,
      env: { PATH: process.env.PATH, ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.once('error', reject)
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('npm run token: prints a token the server accepts; refuses production without AUTH_SECRET', async (t) => {
  const server = await start(t, PRODUCTION)
  // tsx starts slowly: the three runs go at once.
  const [printed, refused, usage] = await Promise.all([
    runTokenScript(['carol'], { AUTH_SECRET: SECRET, NODE_ENV: 'production' }),
    runTokenScript(['carol'], { NODE_ENV: 'production' }),
    runTokenScript([], {})
  ])
  t.equal(printed.code, 0, 'the script succeeds')
  const token = printed.stdout.trim()
  t.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout holds the token alone')
  t.equal(await userIdOf(`${server.url}?token=${token}`), 'carol', 'the printed token is accepted')
  const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { exp: number, iat: number }
  t.equal(payload.exp - payload.iat, 3600, 'valid for one hour')

  t.equal(refused.code, 1, 'production without AUTH_SECRET fails')
  t.match(refused.stderr, /AUTH_SECRET is not set/)
  t.equal(refused.stdout, '', 'no token printed')

  t.equal(usage.code, 2, 'no user id: usage')
  t.match(usage.stderr, /usage: npm run -s token -- <userId>/)
})

t.test('the example wires the chat built-ins, the demo agent and /rpc', async (t) => {
  const server = await start(t, { NODE_ENV: 'development', LOG_LEVEL: 'silent' })
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'start_agent', id: 'run', payload: { input: 'what is (2 + 3) * 4?' } })
  const done = await client.next('agent_completed')
  t.match(done.payload, { status: 'completed', finalResponse: { text: '(2 + 3) * 4 = 20' } })
  t.same(client.frames.filter((f) => f.id === 'run').map((f) => f.type), ['agent_started', 'agent_thinking', 'tool_executing', 'agent_progress', 'tool_completed', 'agent_completed'])

  const rpc = await new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(server.url.replace(/\/ws$/, '/rpc') + '?user=alice')
    ws.once('open', () => resolve(ws))
    ws.once('error', reject)
  })
  t.teardown(() => rpc.terminate())
  const answer = new Promise<unknown>((resolve) => rpc.once('message', (data) => resolve(JSON.parse(data.toString()))))
  rpc.send('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}')
  t.same(await answer, { jsonrpc: '2.0', result: 19, id: 3 })
})

t.test('production: refuses to start without ALLOWED_ORIGINS; an explicit * starts, with the warning', async (t) => {
  const { ALLOWED_ORIGINS: _unset, ...withoutOrigins } = PRODUCTION
  await t.rejects(buildApp({ ...withoutOrigins, LOG_LEVEL: 'silent' }), /ALLOWED_ORIGINS is not set/)
  await t.rejects(buildApp({ ...withoutOrigins, ALLOWED_ORIGINS: ' ', LOG_LEVEL: 'silent' }), /ALLOWED_ORIGINS is not set/, 'a blank list is no list')

  const any = await start(t, { ...PRODUCTION, ALLOWED_ORIGINS: '*' })
  const token = sign(SECRET, { sub: 'alice' })
  const foreign = await tryUpgrade(`${any.url}?token=${token}`, { headers: { origin: 'https://elsewhere.example' } })
  t.equal(foreign.status, 101, '* lets any origin in, on purpose')
  t.ok(any.logs().some((line) => line.includes('allowedOrigins is not set')), 'and the plugin warns about it')
})

t.test('production: GET /stats needs STATS_TOKEN, and is off without it', async (t) => {
  const server = await start(t, PRODUCTION)
  t.equal((await server.app.inject('/stats')).statusCode, 401, 'no credentials → 401')
  t.equal((await server.app.inject({ url: '/stats', headers: { authorization: 'Bearer wrong' } })).statusCode, 401, 'a wrong token → 401')
  const userToken = sign(SECRET, { sub: 'alice' })
  t.equal((await server.app.inject({ url: '/stats', headers: { authorization: `Bearer ${userToken}` } })).statusCode, 401, 'a user JWT is not the stats token')
  const allowed = await server.app.inject({ url: '/stats', headers: { authorization: `Bearer ${STATS_TOKEN}` } })
  t.equal(allowed.statusCode, 200, 'the stats token → 200')
  t.match(allowed.json(), { ws: { connections: Object }, rpc: { connections: Object } })

  const { STATS_TOKEN: _unset, ...noStatsToken } = PRODUCTION
  const off = await start(t, noStatsToken)
  t.equal((await off.app.inject('/stats')).statusCode, 404, 'without STATS_TOKEN the route does not exist')
  const dev = await start(t, DEVELOPMENT)
  t.equal((await dev.app.inject('/stats')).statusCode, 200, 'outside production it stays open for development')
})

t.test('production: GET /metrics is guarded like /stats (STATS_TOKEN), and not served without it', async (t) => {
  const server = await start(t, PRODUCTION)
  t.equal((await server.app.inject('/metrics')).statusCode, 401, 'no credentials → 401')
  const userToken = sign(SECRET, { sub: 'alice' })
  t.equal((await server.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${userToken}` } })).statusCode, 401, 'a user JWT is not the stats token')
  const allowed = await server.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${STATS_TOKEN}` } })
  t.equal(allowed.statusCode, 200, 'the stats token → 200')
  t.match(allowed.body, /^wsr_connections_open\{route="\/ws"\} 0$/m)
  const { STATS_TOKEN: _unset, ...noStatsToken } = PRODUCTION
  const off = await start(t, noStatsToken)
  t.equal((await off.app.inject('/metrics')).statusCode, 404, 'without STATS_TOKEN the route does not exist')
  t.equal((await off.app.inject('/health/ready')).statusCode, 200, 'the health routes stay open for the load balancer')
})

t.test('the ?user= demo identity works in development and test only, never in staging', async (t) => {
  for (const [name, env] of [['development', DEVELOPMENT], ['test', { NODE_ENV: 'test', LOG_LEVEL: 'info' }]] as const) {
    const server = await start(t, env)
    t.equal(await userIdOf(`${server.url}?user=alice`), 'alice', `${name}: ?user= names the client`)
  }
  const staging = await start(t, { NODE_ENV: 'staging', LOG_LEVEL: 'info' })
  const refused = await tryUpgrade(`${staging.url}?user=alice`)
  t.equal(refused.status, 401, 'staging: ?user= is refused')
  const token = sign(DEV_AUTH_SECRET, { sub: 'alice' })
  t.equal(await userIdOf(`${staging.url}?token=${token}`), 'alice', 'staging: a token still works')
})

t.test('tokens never reach a log line: encoded names, 404s, other routes', async (t) => {
  const server = await start(t, PRODUCTION)
  const token = sign(SECRET, { sub: 'alice' })
  const http = server.url.replace(/^ws/, 'http').replace(/\/ws$/, '')
  // %74oken is "token" once Fastify's query parser decodes it, and it is accepted as such.
  t.equal(await userIdOf(`${server.url}?%74oken=${token}`), 'alice', '?%74oken= authenticates')
  t.equal(await userIdOf(`${server.url}?user=x&%54OKEN=nothing&token=${token}`), 'alice', 'other spellings next to the real one')
  const notFound = await fetch(`${http}/ws/?token=${token}`)
  t.equal(notFound.status, 404, '/ws/ is a 404')
  t.notOk((await notFound.text()).includes(token), 'the 404 body does not echo the token')
  const stats = await fetch(`${http}/stats?token=${token}`, { headers: { authorization: `Bearer ${STATS_TOKEN}` } })
  t.equal(stats.status, 200)
  await stats.text()
  await fetch(`${http}/nowhere?a=1&%74oken=${token}#x`).then(async (res) => await res.text())

  const lines = server.logs()
  const requests = lines.filter((line) => line.includes('incoming request'))
  t.ok(requests.length >= 5, `the requests were logged (${requests.length} lines)`)
  for (const line of lines) t.notOk(line.includes(token), `no log line holds the token: ${line.slice(0, 160)}`)
  t.ok(requests.some((line) => line.includes('/ws/?token=[REDACTED]')), 'the 404 is logged, redacted')
  t.ok(requests.some((line) => line.includes('/stats?token=[REDACTED]')), '/stats is logged, redacted')
  t.ok(requests.some((line) => line.includes('%74oken=[REDACTED]')), 'the encoded name is redacted')
})

t.test('the example serves /metrics for both routers and the health routes', async (t) => {
  const server = await start(t, { NODE_ENV: 'development', LOG_LEVEL: 'silent' })
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  const metrics = await server.app.inject('/metrics')
  t.equal(metrics.statusCode, 200)
  t.match(metrics.body, /^wsr_connections_open\{route="\/ws"\} 1$/m)
  t.match(metrics.body, /^wsr_connections_open\{route="\/rpc"\} 0$/m)
  const ready = await server.app.inject('/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ok', reasons: [], connections: 1 })
  t.equal((await server.app.inject('/health/live')).statusCode, 200)
})

t.test('resume is on in the example (memory store without REDIS_URL): a dropped client gets its session back with what it missed', async (t) => {
  const server = await start(t, DEVELOPMENT)
  const alice = await connect(`${server.url}?user=alice`)
  const hello = await alice.next('connection_established')
  const offer = hello.payload.resume as { token: string, windowMs: number } | undefined
  t.type(offer?.token, 'string', 'connection_established offers a resume token')
  t.equal(offer?.windowMs, 120_000, 'the default window')
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { bob.ws.terminate() })
  await bob.next('connection_established')
  for (const client of [alice, bob]) {
    client.send({ type: 'join', id: 'j', payload: { room: 'lobby' } })
    await client.next('joined')
  }
  alice.ws.terminate()
  await alice.closed
  bob.send({ type: 'user_message', id: 'm', payload: { room: 'lobby', text: 'while away' } })
  await bob.next('message_ack')
  const again = await connect(`${server.url}?user=alice&resume=${encodeURIComponent(offer?.token ?? '')}&lastSeq=0`)
  t.teardown(() => { again.ws.terminate() })
  const back = await again.next('connection_established')
  t.equal(back.payload.connectionId, hello.payload.connectionId, 'the same session')
  t.match(await again.next('message'), { seq: 1, payload: { text: 'while away' } }, 'the missed message, replayed')
  t.match(await again.next('resumed'), { payload: { replayed: 1, lastSeq: 1 } })
  t.notOk(server.logs().some((line) => line.includes(offer?.token ?? '')), 'the token never reaches the log')
})

// Issue 12: with REDIS_URL the example keeps sessions in Redis Streams
// (RedisResumeStore), so a client that dropped on one instance resumes on
// another: two example apps on one real redis-server, as two Cloud Run
// instances would be.
const redisMissing = redisUnavailableReason()
if (redisMissing !== undefined && mustRunRedisTests()) {
  t.fail(`Redis tests must run here (WSR_REQUIRE_REDIS=1) but: ${redisMissing}`)
}

t.test('resume with REDIS_URL: the Redis store, so a client that left one instance resumes on another with what it missed', { skip: redisMissing }, async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.close())
  const a = await start(t, { ...DEVELOPMENT, REDIS_URL: redis.url, LOG_LEVEL: 'silent' })
  const b = await start(t, { ...DEVELOPMENT, REDIS_URL: redis.url, LOG_LEVEL: 'silent' })
  const alice = await connect(`${a.url}?user=alice`)
  const hello = await alice.next('connection_established')
  const offer = hello.payload.resume as { token: string, windowMs: number } | undefined
  t.type(offer?.token, 'string', 'connection_established offers a resume token')
  const bob = await connect(`${b.url}?user=bob`)
  t.teardown(() => { bob.ws.terminate() })
  await bob.next('connection_established')
  for (const client of [alice, bob]) {
    client.send({ type: 'join', id: 'j', payload: { room: 'lobby' } })
    await client.next('joined')
  }
  // A join's Redis subscription becomes active shortly after `joined`: probe the room until alice on A hears bob on B
  // (a probe published before that reaches nobody; one heard is numbered, after any heard late).
  let lastSeq = 0
  for (let i = 0; i < 50 && lastSeq === 0; i++) {
    bob.send({ type: 'user_message', id: `p${i}`, payload: { room: 'lobby', text: `probe ${i}` } })
    await bob.next((f) => f.id === `p${i}` && f.type === 'message_ack')
    const heard = await alice.next((f) => f.type === 'message' && f.payload.text === `probe ${i}`, 200).catch(() => undefined)
    if (heard !== undefined) lastSeq = (heard as unknown as { seq: number }).seq
  }
  t.ok(lastSeq >= 1, `live across instances, numbered (seq ${lastSeq})`)
  alice.ws.terminate()
  await alice.closed
  // Whether A has handled the close yet or not, the event is numbered and stored in the session's stream.
  bob.send({ type: 'user_message', id: 'm2', payload: { room: 'lobby', text: 'while away' } })
  await bob.next((f) => f.id === 'm2' && f.type === 'message_ack')
  // Back on the OTHER instance: only a shared store can answer this claim.
  const again = await connect(`${b.url}?user=alice&resume=${encodeURIComponent(offer?.token ?? '')}&lastSeq=${lastSeq}`)
  t.teardown(() => { again.ws.terminate() })
  const back = await again.next('connection_established')
  t.equal(back.payload.connectionId, hello.payload.connectionId, 'the same session, on B')
  t.match(await again.next('message'), { seq: lastSeq + 1, payload: { text: 'while away' } }, 'the missed message, replayed once')
  t.match(await again.next('resumed'), { payload: { replayed: 1, lastSeq: lastSeq + 1 } })
  bob.send({ type: 'user_message', id: 'm3', payload: { room: 'lobby', text: 'after' } })
  await bob.next((f) => f.id === 'm3' && f.type === 'message_ack')
  t.match(await again.next('message'), { seq: lastSeq + 2, payload: { text: 'after' } }, 'its room back on B, numbering goes on')
})
