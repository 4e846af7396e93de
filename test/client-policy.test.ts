import t from 'tap'
import WebSocket from 'ws'
import { createClient, backoffDelay, DEFAULT_BACKOFF, isClientError, ClientError, type Client, type ClientState, type StateInfo } from '../lib/client/index.js'
import { ManualClock } from './helpers/manual-clock.js'
import { scriptedServer } from './helpers/scripted-server.js'
import { waitFor } from './helpers/wait.js'

/**
 * The reconnect policy against a scripted server (a bare `ws` server that
 * closes with the codes under test), with the client's clock moved by hand.
 */

function recordStates (client: Client): Array<{ state: ClientState, info: StateInfo }> {
  const states: Array<{ state: ClientState, info: StateInfo }> = []
  client.on('state', (state, info) => { states.push({ state, info }) })
  return states
}

t.test('backoff: full jitter under min(maxMs, initialMs × 2^n)', async (t) => {
  t.same([0, 1, 2, 3, 6, 7, 40].map((n) => backoffDelay(DEFAULT_BACKOFF, n, () => 0.999999)), [499, 999, 1999, 3999, 29999, 29999, 29999])
  t.equal(backoffDelay(DEFAULT_BACKOFF, 5, () => 0), 0, 'the lower bound is 0')
  t.equal(backoffDelay({ initialMs: 100, maxMs: 1000, stableAfterMs: 1 }, 2, () => 0.5), 200)
})

t.test('repeated 1008 closes count as refusals: closed after maxRefusals, with the reason', async (t) => {
  const server = await scriptedServer(t)
  server.onConnection = (socket) => { socket.close(1008, 'rate limit exceeded') }
  const clock = new ManualClock()
  let tokens = 0
  const client = createClient({ url: server.url, WebSocket, clock, random: () => 0.5, token: () => `t${++tokens}` })
  const states = recordStates(client)
  // Each refused connection ends in reconnecting (or, the last, closed); then time moves on.
  for (let n = 1; n <= 3; n++) {
    await waitFor(() => server.connections === n, 2000, `connection ${n}`)
    await waitFor(() => states.filter((s) => s.state === 'reconnecting' || s.state === 'closed').length === n, 2000, `end of connection ${n}`)
    clock.advance(60_000)
  }
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(client.state, 'closed')
  t.equal(server.connections, 3, 'three refused connections, then no more')
  t.equal(tokens, 3, 'the token function was called before each attempt')
  const closed = states.at(-1)
  t.same(closed, { state: 'closed', info: { code: 1008, reason: 'refused 3 times in a row, last: rate limit exceeded' } })
  t.same(states.filter((s) => s.state === 'reconnecting').map((s) => s.info.delayMs), [250, 500], 'backoff between refusals')
  t.equal(clock.pending, 0, 'no timer left')
})

t.test('a 1000 from the server ends the client; reconnect: false ends it on any loss', async (t) => {
  const server = await scriptedServer(t)
  server.onConnection = (socket) => { setTimeout(() => { socket.close(1000, 'disconnect requested') }, 20) }
  const client = createClient({ url: server.url, WebSocket })
  const states = recordStates(client)
  await waitFor(() => client.state === 'closed', 5000)
  t.same(states.map((s) => s.state), ['open', 'closed'])
  t.same(states[1]?.info, { code: 1000, reason: 'disconnect requested' })

  server.onConnection = (socket) => { setTimeout(() => { socket.close(1001, 'server shutting down') }, 20) }
  const once = createClient({ url: server.url, WebSocket, reconnect: false })
  const onceStates = recordStates(once)
  await waitFor(() => once.state === 'closed', 5000)
  t.same(onceStates.map((s) => s.state), ['open', 'closed'])
  t.equal(onceStates[1]?.info.code, 1001)
})

t.test('the attempt count grows while connections are short-lived and resets after a stable one', async (t) => {
  const server = await scriptedServer(t)
  const clock = new ManualClock()
  const client = createClient({ url: server.url, WebSocket, clock, random: () => 0.999 })
  const states = recordStates(client)
  const drop = async (): Promise<StateInfo> => {
    const count = states.length
    for (const socket of serverSockets) socket.close(1013, 'client too slow')
    await waitFor(() => states.slice(count).some((s) => s.state === 'reconnecting'), 2000)
    return states.slice(count).find((s) => s.state === 'reconnecting')?.info ?? {}
  }
  const serverSockets = new Set<WebSocket>()
  server.onConnection = (socket) => { serverSockets.add(socket); socket.on('close', () => serverSockets.delete(socket)) }
  const reopen = async (): Promise<void> => {
    clock.advance(30_000)
    await waitFor(() => client.state === 'open', 2000)
  }
  await waitFor(() => client.state === 'open', 2000)
  t.equal((await drop()).delayMs, 499)
  await reopen()
  t.equal((await drop()).delayMs, 999, 'a connection lost at once backs off further')
  await reopen()
  t.equal((await drop()).delayMs, 1998)
  await reopen()
  clock.advance(10_000) // stable: open for stableAfterMs
  const afterStable = await drop()
  t.equal(afterStable.delayMs, 499, 'reset after a stable connection')
  t.equal(afterStable.code, 1013)
  client.close()
})

t.test('a refused TCP connection and a token function that throws are failed attempts; a throwing listener breaks nothing', async (t) => {
  const clock = new ManualClock()
  let calls = 0
  const client = createClient({
    url: 'ws://127.0.0.1:1/ws',
    WebSocket,
    clock,
    random: () => 0,
    token: () => {
      calls++
      if (calls === 1) throw new Error('no session')
      return 'x'
    }
  })
  const states = recordStates(client)
  const thrown: unknown[] = []
  const onUncaught = (err: unknown): void => { thrown.push(err) }
  process.on('uncaughtException', onUncaught)
  t.teardown(() => { process.off('uncaughtException', onUncaught) })
  client.on('state', () => { throw new Error('listener bug') })
  await waitFor(() => states.length === 1, 2000)
  t.same(states[0], { state: 'reconnecting', info: { code: 1006, reason: 'token: no session', delayMs: 0, attempt: 1 } })
  clock.advance(0)
  await waitFor(() => states.length === 2, 5000)
  t.equal(states[1]?.info.code, 1006, 'connection refused')
  t.equal(states[1]?.info.attempt, 2)
  await waitFor(() => thrown.length === 2, 2000)
  t.match(thrown, [{ message: 'listener bug' }, { message: 'listener bug' }], 'the listener\'s error is rethrown, not swallowed')
  client.close()
})

t.test('no global WebSocket on Node 20 without one passed: a clear TypeError; isClientError', async (t) => {
  const hasGlobal = (globalThis as { WebSocket?: unknown }).WebSocket !== undefined
  if (hasGlobal) {
    t.ok(createClient({ url: 'ws://127.0.0.1:1/ws' }), 'the global WebSocket is used')
  } else {
    t.throws(() => createClient({ url: 'ws://127.0.0.1:1/ws' }), { name: 'TypeError', message: /No global WebSocket/ })
  }
  t.ok(isClientError(new ClientError('TIMEOUT', 'x')))
  const foreign = Object.assign(new Error('x'), { name: 'ClientError', code: 'TIMEOUT' })
  t.ok(isClientError(foreign), 'recognised by shape across bundles')
  t.notOk(isClientError(new Error('x')))
  const bad = createClient({ url: 'not a url', WebSocket })
  await waitFor(() => bad.state === 'closed', 2000)
  t.equal(bad.state, 'closed', 'a URL the WebSocket class refuses ends the client')
})

t.test('offline: a queued request times out and frees its place; close() fails queued requests and runs with CLOSED', async (t) => {
  const clock = new ManualClock()
  const client = createClient({ url: 'ws://127.0.0.1:1/ws', WebSocket, clock, queueSize: 2 })
  const first = client.request('echo', { text: 'a' }, { timeoutMs: 1000 }).catch((err: unknown) => err)
  const second = client.request('echo', { text: 'b' }).catch((err: unknown) => err)
  t.same(client.send('x'), { ok: false, code: 'QUEUE_FULL' })
  clock.advance(1000)
  t.match(await first, { code: 'TIMEOUT' }, 'a queued request never hangs')
  const run = client.startAgent('go')
  t.same(client.send('y'), { ok: false, code: 'QUEUE_FULL' }, 'the run took the place the timed-out request freed')
  const refusedRun = client.startAgent('too many')
  await t.rejects((async () => { for await (const event of refusedRun) t.fail(`no event expected: ${event.type}`) })(), { code: 'QUEUE_FULL' })
  client.close()
  t.match(await second, { code: 'CLOSED' })
  const iteration = (async () => { for await (const event of run) t.fail(`no event expected: ${event.type}`) })()
  await t.rejects(iteration, { code: 'CLOSED' })
  t.equal(clock.pending, 0, 'no timer left')
})
