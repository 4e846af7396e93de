// Issue 10 §3 and §4 at the plugin level: wsRouter read where no router is
// registered, a second registration in one context, the register option
// logLevel, checkConnection() without a socket, credentials that expire,
// the demo identity per environment, tokens kept out of every log line.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { wsRouter, type WsRouterOptions } from '../lib/index.js'
import { redactUrl } from '../lib/redact.js'
import { logSink, startServer } from './helpers/server.js'
import { connect, tryUpgrade } from './helpers/client.js'
import { heartbeatTick } from './helpers/internals.js'

t.test('wsRouter where no router is registered: FST_WSR_NO_ROUTER, never undefined', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  let nested: FastifyInstance | undefined
  let sibling: FastifyInstance | undefined
  await app.register(async (scope) => {
    await scope.register(wsRouter, { path: '/a', environment: 'test' })
    await scope.register(async (child) => { nested = child })
  })
  await app.register(async (scope) => { sibling = scope })
  await app.ready()
  t.throws(() => app.wsRouter, { code: 'FST_WSR_NO_ROUTER', message: /read it there \(scope\.wsRouter\)/ }, 'the root has no router: a coded error')
  t.throws(() => sibling?.wsRouter, { code: 'FST_WSR_NO_ROUTER' }, 'nor has a sibling context')
  t.equal(nested?.wsRouter.config.path, '/a', 'a child context sees its parent\'s router')
  t.equal(app.hasDecorator('wsRouter'), true, 'typed as present, and present (as a getter)')
})

t.test('two routers: each context answers its own, a nested one shadows its parent', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(websocket)
  const seen: string[] = []
  await app.register(async (scope) => {
    await scope.register(wsRouter, { path: '/outer', environment: 'test' })
    await scope.register(async (inner) => {
      await inner.register(wsRouter, { path: '/inner', environment: 'test' })
      seen.push(inner.wsRouter.config.path)
    })
    seen.push(scope.wsRouter.config.path)
  })
  await app.ready()
  t.same(seen, ['/inner', '/outer'])
})

t.test('registering the plugin twice in one context: FST_WSR_ALREADY_REGISTERED, saying what to do', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsRouter, { path: '/one', environment: 'test' })
  app.register(wsRouter, { path: '/two', environment: 'test' })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WSR_ALREADY_REGISTERED', message: /already registered in this context \(path \/one\).*its own child context/ })
})

t.test('the register option logLevel applies to the plugin\'s own log lines and its route', async (t) => {
  const production: WsRouterOptions = { environment: 'production', allowAnonymous: true, allowedOrigins: ['https://app.example.com'] }
  const run = async (logLevel?: 'error'): Promise<string[]> => {
    const sink = logSink()
    const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
    const { allowedOrigins: _none, ...noOrigins } = production
    await app.register(wsRouter, logLevel === undefined ? noOrigins : { ...noOrigins, logLevel })
    await app.ready()
    await app.close()
    return sink.lines.map((line) => line.msg)
  }
  const loud = await run()
  t.ok(loud.some((msg) => msg.includes('allowedOrigins is not set')), 'without logLevel: the start-up warning')
  const quiet = await run('error')
  t.notOk(quiet.some((msg) => msg.includes('allowedOrigins is not set')), 'logLevel error: no warning')

  const sink = logSink()
  const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
  t.teardown(() => app.close())
  await app.register(wsRouter, { ...production, logLevel: 'error' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const refused = await tryUpgrade(`ws://127.0.0.1:${port}/ws`, { headers: { origin: 'https://evil.example' } })
  t.equal(refused.status, 403, 'the refusal still happens')
  const below = sink.lines.filter((line) => line.level < 50 && !line.msg.startsWith('Server listening'))
  t.same(below.map((line) => line.msg), [], 'but its info lines (and the route\'s request lines) are below the plugin\'s level')
})

t.test('checkConnection() on a plain HTTP request: lastSeenMs is null, in code and in JSON', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsRouter, { environment: 'test' })
  let inCode: unknown
  app.get('/status', async (request) => {
    const status = request.checkConnection()
    inCode = status.lastSeenMs
    return status
  })
  const reply = await app.inject('/status')
  t.equal(inCode, null, 'null in code')
  t.same(reply.json(), { state: 'CLOSED', connected: false, alive: false, writable: false, bufferedAmount: 0, lastSeenMs: null }, 'null in JSON')
})

t.test('authenticate with expiresAt: closed with 1008 TOKEN_EXPIRED by the heartbeat, refused when already past', async (t) => {
  let expiresAt: unknown = Date.now() + 60_000
  // A JavaScript caller can return anything: the wrong type is checked at run time too.
  const server = await startServer({ authenticate: () => ({ userId: 'alice', expiresAt: expiresAt as number }) })
  t.teardown(() => server.close())
  const client = await connect(server.url)
  await client.next('connection_established')
  const router = server.app.wsRouter
  heartbeatTick(router, Date.now() + 30_000)
  t.equal(router.connectionCount, 1, 'still open before the expiry')
  heartbeatTick(router, (expiresAt as number) + 1)
  const closed = await client.closed
  t.equal(closed.code, 1008, 'closed with 1008 once past it')
  t.equal(closed.reason, 'TOKEN_EXPIRED', 'the reason says why')
  t.ok(server.logs.some((line) => line.msg.includes('credentials expired')), 'one log line says why')

  expiresAt = Date.now() - 1
  const past = await tryUpgrade(server.url)
  t.equal(past.status, 401, 'an identity already expired is refused')
  t.equal(past.body.code, 'AUTH_FAILED')
  expiresAt = 'tomorrow'
  const wrong = await tryUpgrade(server.url)
  t.equal(wrong.status, 500, 'an expiresAt that is not a number is a server error')
  t.ok(server.logs.some((line) => line.level === 50 && line.msg.includes('expiresAt')), 'logged as an error')
})

t.test('the ?user= demo identity: development and test only', async (t) => {
  for (const [environment, expected] of [['development', true], ['test', true], ['staging', false], ['production', false]] as const) {
    const server = await startServer({ environment, allowAnonymous: true })
    const client = await connect(`${server.url}?user=alice`)
    const userId = (await client.next('connection_established')).payload.userId as string
    if (expected) t.equal(userId, 'alice', `${environment}: ?user= names the client`)
    else t.match(userId, /^anon-/, `${environment}: ?user= is ignored (${userId})`)
    client.ws.terminate()
    await server.close()
  }
})

t.test('tokens are kept out of every log line of the app: other routes, 404s, encoded names', async (t) => {
  const sink = logSink()
  const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
  t.teardown(() => app.close())
  app.get('/health', async () => ({ ok: true }))
  await app.register(async (scope) => {
    await scope.register(wsRouter, { environment: 'test', authenticate: (_request, token) => token === SECRET ? { userId: 'alice' } : null })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const http = `http://127.0.0.1:${port}`
  const SECRET_PARAM = encodeURIComponent(SECRET)
  const hello = await connect(`ws://127.0.0.1:${port}/ws?%74oken=${SECRET_PARAM}`)
  t.equal((await hello.next('connection_established')).payload.userId, 'alice', '?%74oken= is accepted as the token (Fastify decodes the name)')
  hello.ws.terminate()
  const notFound = await fetch(`${http}/ws/?token=${SECRET_PARAM}`)
  t.equal(notFound.status, 404)
  t.notOk((await notFound.text()).includes(SECRET), 'the default 404 body does not echo it')
  await (await fetch(`${http}/health?token=${SECRET_PARAM}`)).text()
  await (await fetch(`${http}/health?x=1&T%6Fken=${SECRET_PARAM}`)).text()
  const lines = sink.lines.map((line) => JSON.stringify(line))
  t.ok(lines.filter((line) => line.includes('incoming request')).length >= 4, 'the requests were logged')
  t.same(lines.filter((line) => line.includes(SECRET)), [], 'no line holds the token')
  t.ok(lines.some((line) => line.includes('/health?token=[REDACTED]')), 'a route of the app, redacted')
  t.ok(lines.some((line) => line.includes('Route GET:/ws/?token=[REDACTED] not found')), 'the default 404 line, redacted')
})

const SECRET = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl'

t.test('redactUrl', async (t) => {
  t.equal(redactUrl('/ws'), '/ws', 'no query')
  t.equal(redactUrl('/ws?user=a'), '/ws?user=a', 'nothing to redact: the same string')
  t.equal(redactUrl('/ws?token=abc&x=1'), '/ws?token=[REDACTED]&x=1')
  t.equal(redactUrl('/ws?%74oken=abc'), '/ws?%74oken=[REDACTED]', 'a percent-encoded name')
  t.equal(redactUrl('/ws?TOKEN=abc&token=def'), '/ws?TOKEN=[REDACTED]&token=[REDACTED]', 'every spelling, every occurrence')
  t.equal(redactUrl('/ws?%E0%A4%A=1&token=abc#frag'), '/ws?%E0%A4%A=1&token=[REDACTED]#frag', 'a malformed escape elsewhere does not stop it')
  t.equal(redactUrl('/ws?tokenx=abc&token'), '/ws?tokenx=abc&token', 'other names, and a name without value, stay')
})
