import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { Type } from '@sinclair/typebox'
import { defineContract, routeOptions } from '../lib/contracts.js'
import Fastify from 'fastify'
import { WsRouterError, wsRouter } from '../lib/index.js'
import { createClient, ClientError, type Client, type ClientState, type StateInfo, type AgentEvent } from '../lib/client/index.js'
import { contractValidator } from '../lib/client/validate.js'
import type { AgentRunContext, AgentStep } from '../lib/agent-types.js'
import { startServer, type TestServer } from './helpers/server.js'
import { delay, waitFor } from './helpers/wait.js'
import { ManualClock } from './helpers/manual-clock.js'

const contract = defineContract({
  messages: {
    echo: { payload: Type.Object({ text: Type.String({ minLength: 1 }) }), reply: Type.Object({ text: Type.String() }) },
    add: { payload: Type.Object({ a: Type.Number(), b: Type.Number() }), reply: Type.Object({ sum: Type.Number() }) },
    fail: {},
    slow: { payload: Type.Object({ ms: Type.Integer() }), reply: Type.Object({ waited: Type.Integer() }) }
  },
  events: { news: Type.Object({ headline: Type.String() }) }
})
type AppContract = typeof contract

async function appServer (options: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  return await startServer(options, (app) => {
    app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => ({ text: payload.text }))
    app.wsRouter.on('add', routeOptions(contract, 'add'), (payload) => ({ sum: payload.a + payload.b }))
    app.wsRouter.on('fail', () => { throw new WsRouterError('DEMO_FAILURE', 'always fails', { why: 'demo' }) })
    app.wsRouter.on('slow', { ...routeOptions(contract, 'slow'), timeoutMs: 60_000 }, async (payload) => {
      await delay(payload.ms)
      return { waited: payload.ms }
    })
  })
}

/** The next state change that satisfies `match`. */
function nextState (client: Client<AppContract>, match: (state: ClientState, info: StateInfo) => boolean): Promise<{ state: ClientState, info: StateInfo }> {
  return new Promise((resolve) => {
    const off = client.on('state', (state, info) => {
      if (!match(state, info)) return
      off()
      resolve({ state, info })
    })
  })
}

function whenOpen (client: Client<AppContract>): Promise<unknown> {
  return client.state === 'open' ? Promise.resolve() : nextState(client, (s) => s === 'open')
}

async function rejection (promise: Promise<unknown>): Promise<ClientError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ClientError) return err
    throw err
  }
  throw new Error('expected a rejection')
}

t.test('requests resolve with their own reply, errors carry the wire code, events reach listeners', async (t) => {
  const server = await appServer()
  t.teardown(server.close)
  const client = createClient<AppContract>({ url: `${server.url}?user=alice`, WebSocket })
  t.teardown(() => { client.close() })
  t.equal(client.state, 'connecting')
  await whenOpen(client)
  t.equal(client.userId, 'alice')
  t.match(client.connectionId, /^[0-9a-f-]{36}$/)

  t.same(await client.request('echo', { text: 'hi' }), { text: 'hi' })
  // Pipelined: 50 requests in flight at once, each answered with its own reply.
  const sums = await Promise.all(Array.from({ length: 50 }, (_, i) => client.request('add', { a: i, b: 1000 })))
  t.same(sums.map((s) => s.sum), Array.from({ length: 50 }, (_, i) => i + 1000))

  const invalid = await rejection(client.request('echo', { text: '' }))
  t.equal(invalid.code, 'VALIDATION_FAILED')
  t.match(invalid.details, [{ path: '/text' }])
  t.match(invalid.ref, /^[0-9a-f]{12}$/)
  const failed = await rejection(client.request('fail'))
  t.same({ code: failed.code, message: failed.message, details: failed.details }, { code: 'DEMO_FAILURE', message: 'always fails', details: { why: 'demo' } })

  // Built-ins are typed too: ping's reply is pong's payload.
  const pong = await client.request('ping')
  t.type(pong.serverTime, 'number')

  const news: string[] = []
  const off = client.on('news', (payload) => { news.push(payload.headline) })
  await server.app.wsRouter.broadcast('news', { headline: 'one' })
  await waitFor(() => news.length === 1)
  off()
  await server.app.wsRouter.broadcast('news', { headline: 'two' })
  t.same(await client.request('echo', { text: 'after' }), { text: 'after' }, 'a frame after the broadcast has arrived')
  t.same(news, ['one'], 'no event after unsubscribe')

  const outcome = client.send('echo', { text: 'fire and forget' })
  t.same(outcome, { ok: true, queued: false })
})

t.test('client-side validation refuses a bad payload before it is sent and checks replies', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('echo', () => ({ text: 42 }))
  })
  t.teardown(server.close)
  const client = createClient<AppContract>({ url: server.url, WebSocket, validate: contractValidator(contract) })
  t.teardown(() => { client.close() })
  await whenOpen(client)
  const before = server.app.wsRouter.getStats().types.echo?.received ?? 0
  const refused = await rejection(client.request('echo', { text: '' }))
  t.equal(refused.code, 'INVALID_PAYLOAD')
  t.match(refused.message, /\/text/)
  t.equal(server.app.wsRouter.getStats().types.echo?.received ?? 0, before, 'never sent')
  const badReply = await rejection(client.request('echo', { text: 'x' }))
  t.equal(badReply.code, 'INVALID_PAYLOAD', 'a reply that does not fit its schema is refused')
  t.equal(server.app.wsRouter.getStats().types.echo?.received, before + 1, 'the valid payload was sent')
})

t.test('a request times out at its deadline (manual clock), a late reply is ignored; abort and close settle it', async (t) => {
  const server = await appServer()
  t.teardown(server.close)
  const clock = new ManualClock()
  const client = createClient<AppContract>({ url: server.url, WebSocket, clock })
  t.teardown(() => { client.close() })
  await whenOpen(client)

  let settled = 0
  const slow = client.request('slow', { ms: 150 })
  slow.then(() => { settled++ }, () => { settled++ })
  clock.advance(9_999)
  await delay(20)
  t.equal(settled, 0, 'not before the default 10 s')
  clock.advance(1)
  const timedOut = await rejection(slow)
  t.equal(timedOut.code, 'TIMEOUT')
  await delay(250)
  t.equal(settled, 1, 'the late reply did not settle it again')
  t.same(await client.request('echo', { text: 'still fine' }), { text: 'still fine' })

  const short = client.request('slow', { ms: 150 }, { timeoutMs: 50 })
  clock.advance(50)
  t.equal((await rejection(short)).code, 'TIMEOUT', 'timeoutMs per request')

  const controller = new AbortController()
  const aborted = client.request('slow', { ms: 150 }, { signal: controller.signal })
  controller.abort()
  t.equal((await rejection(aborted)).code, 'ABORTED')
  t.equal((await rejection(client.request('echo', { text: 'x' }, { signal: controller.signal }))).code, 'ABORTED', 'an aborted signal refuses at once')

  const pending = client.request('slow', { ms: 150 })
  client.close()
  t.equal((await rejection(pending)).code, 'CLOSED')
  t.equal((await rejection(client.request('echo', { text: 'late' }))).code, 'CLOSED')
  t.same(client.send('echo', { text: 'late' }), { ok: false, code: 'CLOSED' })
  t.equal(client.state, 'closed')
  t.equal(clock.pending, 0, 'no timer left behind')
})

/** A port that was free a moment ago, for a server that starts later. */
async function sparePort (): Promise<number> {
  const probe = await startServer()
  const port = Number(new URL(probe.url).port)
  await probe.close()
  return port
}

t.test('offline: requests wait in the bounded queue (QUEUE_FULL beyond it) and go out once connected', async (t) => {
  const port = await sparePort()
  const client = createClient<AppContract>({ url: `ws://127.0.0.1:${port}/ws`, WebSocket, queueSize: 3 })
  t.teardown(() => { client.close() })
  const failures: StateInfo[] = []
  client.on('state', (state, info) => { if (state === 'reconnecting') failures.push(info) })
  const queued = [client.request('echo', { text: 'a' }), client.request('echo', { text: 'b' })]
  t.same(client.send('echo', { text: 'c' }), { ok: true, queued: true })
  const full = await rejection(client.request('echo', { text: 'd' }))
  t.equal(full.code, 'QUEUE_FULL', 'fails at once, not after a timeout')
  t.same(client.send('echo', { text: 'e' }), { ok: false, code: 'QUEUE_FULL' })
  await waitFor(() => failures.length >= 1, 5000, 'a failed attempt')
  t.ok(failures.every((f) => f.delayMs !== undefined && f.delayMs >= 0 && f.delayMs < 500 * 2 ** ((f.attempt ?? 1) - 1)), 'backoff within its bounds')

  const app = Fastify()
  await app.register(wsRouter, { environment: 'test' })
  app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => ({ text: payload.text }))
  await app.listen({ port, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const server = { app }
  t.same(await Promise.all(queued), [{ text: 'a' }, { text: 'b' }], 'queued requests answered after connecting')
  await waitFor(() => server.app.wsRouter.getStats().types.echo?.received === 3, 5000, 'the queued send')
})

t.test('in-flight requests fail DISCONNECTED when the socket dies, idempotent ones are sent again', async (t) => {
  let runs = 0
  const server = await startServer({}, (app) => {
    app.wsRouter.on('slow', { ...routeOptions(contract, 'slow'), timeoutMs: 60_000 }, async (payload) => {
      runs++
      await delay(payload.ms)
      return { waited: payload.ms }
    })
  })
  t.teardown(server.close)
  const client = createClient<AppContract>({ url: server.url, WebSocket, random: () => 0 })
  t.teardown(() => { client.close() })
  await whenOpen(client)
  const once = client.request('slow', { ms: 300 })
  const again = client.request('slow', { ms: 300 }, { idempotent: true })
  await waitFor(() => runs === 2, 5000, 'both handlers running')
  const lost = nextState(client, (s) => s === 'reconnecting')
  for (const socket of server.app.websocketServer.clients) socket.terminate()
  t.equal((await lost).info.code, 1006)
  const disconnected = await rejection(once)
  t.equal(disconnected.code, 'DISCONNECTED', 'never resent silently: the server may have run it')
  t.same(await again, { waited: 300 }, 'the idempotent request ran again on the new connection')
  t.equal(runs, 3)
})

t.test('the server\'s reconnect frame: 1012, then a new connection after retryAfterMs', async (t) => {
  const server = await appServer({ maxConnectionAgeMs: 400, heartbeatIntervalMs: 100, livenessWindowMs: 1000 })
  t.teardown(server.close)
  const client = createClient<AppContract>({ url: server.url, WebSocket })
  t.teardown(() => { client.close() })
  let asked: { retryAfterMs: number } | undefined
  client.on('reconnect', (payload) => { asked = payload })
  await whenOpen(client)
  const first = client.connectionId
  const { info } = await nextState(client, (s) => s === 'reconnecting')
  t.equal(info.code, 1012)
  t.equal(info.reason, 'max_connection_age')
  t.ok(asked !== undefined, 'the reconnect frame reached the listeners')
  t.equal(info.delayMs, asked?.retryAfterMs, 'waits what the server asked, not the backoff')
  await whenOpen(client)
  t.not(client.connectionId, first, 'a new connection')
  t.same(await client.request('echo', { text: 'again' }), { text: 'again' })
})

t.test('a 401 calls the token function again; repeated refusals end in closed with the reason', async (t) => {
  const valid = new Set(['fresh-2'])
  const server = await appServer({ authenticate: (_request, token) => token !== undefined && valid.has(token) ? { userId: 'tok' } : null })
  t.teardown(server.close)
  const issued: string[] = []
  const client = createClient<AppContract>({
    url: server.url,
    WebSocket,
    random: () => 0,
    token: () => {
      const token = issued.length === 0 ? 'expired-1' : `fresh-${issued.length + 1}`
      issued.push(token)
      return token
    }
  })
  t.teardown(() => { client.close() })
  const refused = await nextState(client, (s) => s === 'reconnecting')
  t.equal(refused.info.reason, 'HTTP 401')
  await whenOpen(client)
  t.same(issued, ['expired-1', 'fresh-2'], 'called again before the reconnect')
  t.equal(client.userId, 'tok')

  const hopeless = createClient<AppContract>({ url: server.url, WebSocket, random: () => 0, token: async () => 'never-valid' })
  const pending = hopeless.request('echo', { text: 'x' })
  const { info } = await nextState(hopeless as Client<AppContract>, (s) => s === 'closed')
  t.match(info.reason, /refused 3 times in a row, last: HTTP 401/)
  t.equal((await rejection(pending)).code, 'CLOSED')
})

t.test('rooms are joined again after a reconnect; a refused rejoin is reported', async (t) => {
  let allowPrivate = true
  const server = await startServer({ authorizeJoin: (_ctx, room) => room !== 'private' || allowPrivate })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = createClient<AppContract>({ url: `${server.url}?user=rita`, WebSocket, random: () => 0 })
  t.teardown(() => { client.close() })
  await whenOpen(client)
  await client.join('lobby')
  t.same(await client.request('join', { room: 'private' }), { room: 'private' }, 'a join through request() is tracked too')
  await client.join('temp')
  await client.leave('temp')
  t.same([...client.rooms].sort(), ['lobby', 'private'])

  allowPrivate = false
  const refusedRejoin = new Promise<{ room: string, code: string }>((resolve) => {
    client.on('room_rejoin_failed', (failure) => { resolve({ room: failure.room, code: failure.error.code }) })
  })
  for (const socket of server.app.websocketServer.clients) socket.terminate()
  await nextState(client, (s) => s === 'reconnecting')
  await whenOpen(client)
  t.same(await refusedRejoin, { room: 'private', code: 'FORBIDDEN' })
  await waitFor(() => router.roomsOf(client.connectionId ?? '').includes('lobby'), 5000, 'lobby joined again')
  t.same(router.roomsOf(client.connectionId ?? ''), ['lobby'])
  t.same([...client.rooms], ['lobby'], 'the refused room is dropped')
})

t.test('an agent run is an async iterable ending in one agent_completed; leaving the loop stops the run', async (t) => {
  let stoppedBySignal = 0
  async function * agent (input: string, ctx: AgentRunContext): AsyncGenerator<AgentStep, unknown, undefined> {
    yield { type: 'thinking', reasoning: `about ${input}` }
    if (input === 'forever') {
      await new Promise<void>((resolve) => { ctx.signal.addEventListener('abort', () => { stoppedBySignal++; resolve() }, { once: true }) })
      return undefined
    }
    yield { type: 'tool_start', toolName: 'calc', parameters: { input } }
    yield { type: 'tool_end', toolName: 'calc', results: { ok: true } }
    return { text: 'done' }
  }
  const server = await startServer({ agent })
  t.teardown(server.close)
  const client = createClient<AppContract>({ url: server.url, WebSocket })
  t.teardown(() => { client.close() })
  await whenOpen(client)

  const events: AgentEvent[] = []
  for await (const event of client.startAgent('2+2')) events.push(event)
  t.same(events.map((e) => e.type), ['agent_started', 'agent_thinking', 'tool_executing', 'tool_completed', 'agent_completed'])
  const last = events.at(-1)
  t.ok(last?.type === 'agent_completed' && last.payload.status === 'completed')

  const run = client.startAgent('forever')
  for await (const event of run) {
    if (event.type === 'agent_thinking') break
  }
  await waitFor(() => stoppedBySignal === 1, 5000, 'the server run aborted')
  t.ok(run.runId, 'the run had its id')

  const stopped = client.startAgent('forever')
  const seen: string[] = []
  for await (const event of stopped) {
    seen.push(event.type)
    if (event.type === 'agent_thinking') await stopped.stop()
  }
  t.same(seen, ['agent_started', 'agent_thinking', 'agent_completed'])
  t.equal(stoppedBySignal, 2)

  const cut = client.startAgent('forever')
  const cutEvents: string[] = []
  const cutIteration = (async () => {
    for await (const event of cut) {
      cutEvents.push(event.type)
      if (event.type === 'agent_thinking') for (const socket of server.app.websocketServer.clients) socket.terminate()
    }
  })()
  await t.rejects(cutIteration, { code: 'DISCONNECTED' }, 'a run whose connection dies ends with DISCONNECTED')
  t.same(cutEvents, ['agent_started', 'agent_thinking'])
  await whenOpen(client)

  const refused = client.startAgent('x', { room: 'not-a-member' })
  const error = await rejection((async () => { for await (const event of refused) t.fail(`no event expected, got ${event.type}`) })())
  t.equal(error.code, 'FORBIDDEN')
})

t.test('a half-open connection (server silent) is detected within two heartbeat intervals', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((resolve) => wss.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(resolve) }))
  const received: string[] = []
  let connections = 0
  let answering = true
  wss.on('connection', (socket) => {
    connections++
    socket.on('message', (data) => {
      received.push(data.toString())
      if (answering) socket.send(JSON.stringify({ type: 'pong', payload: { serverTime: 0 }, timestamp: 0 }))
    })
    socket.send(JSON.stringify({ type: 'connection_established', payload: { connectionId: `c${connections}`, userId: 'u', protocolVersion: 1, heartbeatIntervalMs: 30_000, maxPayloadBytes: 65536 }, timestamp: 0 }))
  })
  const address = wss.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const clock = new ManualClock()
  const client = createClient<AppContract>({ url: `ws://127.0.0.1:${address.port}`, WebSocket, clock })
  t.teardown(() => { client.close() })
  await whenOpen(client)

  // An answering server keeps the connection alive through many intervals.
  for (let i = 0; i < 8; i++) {
    const before = received.length
    clock.advance(15_000)
    await waitFor(() => received.length > before, 5000, 'a ping')
    await delay(20)
  }
  t.equal(client.state, 'open', 'alive after 4 intervals of pings and pongs')
  t.ok(received.every((frame) => frame === '{"type":"ping"}'), 'liveness frames are plain pings')

  answering = false
  let deadAt = -1
  const start = clock.now()
  let reason: string | undefined
  client.on('state', (state, info) => {
    if (state !== 'reconnecting' || deadAt !== -1) return
    deadAt = clock.now() - start
    reason = info.reason
  })
  // Steps of a quarter interval; the state listener sets deadAt.
  for (let i = 0; i < 8; i++) {
    if (client.state !== 'open') break
    clock.advance(7_500)
    await delay(20)
  }
  t.ok(deadAt > 30_000, `not declared dead within one interval (${deadAt} ms)`)
  t.ok(deadAt <= 60_000, `declared dead within two intervals (${deadAt} ms)`)
  t.equal(reason, 'liveness timeout')
  const reopened = whenOpen(client)
  clock.advance(500) // the first backoff is below 500 ms
  await reopened
  t.equal(connections, 2, 'and connected again')
})

t.test('every client code is documented in docs/errors.md and docs/client.md', async (t) => {
  const { readFileSync } = await import('node:fs')
  const { ClientErrorCode } = await import('../lib/client/index.js')
  const errorsDoc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const clientDoc = readFileSync(new URL('../docs/client.md', import.meta.url), 'utf8')
  for (const code of Object.values(ClientErrorCode)) {
    t.ok(errorsDoc.includes(`| \`${code}\` |`), `${code} in errors.md`)
    t.ok(clientDoc.includes(`| \`${code}\` |`), `${code} in client.md`)
  }
})
