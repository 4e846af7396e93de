import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import { startServer, type TestServer } from './helpers/server.js'
import { connect, type TestClient } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'

// Issue 9: the consecutive-error count follows the order frames arrived in,
// not the order their replies were written; client-caused runs close with
// 1008, runs with a handler failure with 1011.

const Echo = Type.Object({ text: Type.String() })

/** Frames sent in one TCP write, so the server reads them pipelined, in one read. */
function burst (client: TestClient, frames: Array<unknown | string>): void {
  const socket = (client.ws as unknown as { _socket: { cork: () => void, uncork: () => void } })._socket
  socket.cork()
  for (const frame of frames) {
    if (typeof frame === 'string') client.sendRaw(frame)
    else client.send(frame)
  }
  socket.uncork()
}

/** The close code, or null when the connection stays open for `ms`. */
async function closedWithin (client: TestClient, ms: number): Promise<{ code: number, reason: string } | null> {
  return await Promise.race([client.closed, delay(ms).then(() => null)])
}

/** A server with an `echo` route and one connected client, both closed after the test. */
async function echoServer (t: Test): Promise<{ server: TestServer, client: TestClient }> {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('echo', { schema: Echo }, (payload) => payload)
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  return { server, client }
}

/** Ids answered (reply, ack or error), each counted. */
function answers (client: TestClient): Map<unknown, number> {
  const seen = new Map<unknown, number>()
  for (const frame of client.frames) {
    if (frame.id !== undefined) seen.set(frame.id, (seen.get(frame.id) ?? 0) + 1)
  }
  return seen
}

t.test('300 pipelined frames, every 7th invalid, bursts of 40: never closed, every id answered once (default options)', async (t) => {
  const { server, client } = await echoServer(t)
  let closedWith: number | null = null
  client.closed.then(({ code }) => { closedWith = code }, () => {})
  const total = 300
  for (let start = 0; start < total; start += 40) {
    const frames: unknown[] = []
    for (let i = start; i < Math.min(start + 40, total); i++) {
      // Every 7th frame fails validation (client-caused); the others are served.
      frames.push({ type: 'echo', id: i, payload: i % 7 === 6 ? { text: 7 } : { text: `m${i}` } })
    }
    burst(client, frames)
    // Paced to the default rate limit (100/s, burst 200): no frame is refused for rate.
    await delay(250)
  }
  await waitFor(() => answers(client).size === total || closedWith !== null, 10_000, 'every id answered')
  t.equal(closedWith, null, 'the connection was not closed')
  const seen = answers(client)
  t.equal(seen.size, total, 'every id answered')
  t.ok([...seen.values()].every((n) => n === 1), 'each id answered exactly once')
  const errors = client.frames.filter((f) => f.type === 'error')
  t.equal(errors.length, Math.floor(total / 7), 'the invalid ones are answered with errors')
  t.ok(errors.every((f) => f.payload.code === 'VALIDATION_FAILED'))
  t.equal(server.app.wsRouter.getStats().rateLimited, 0)
})

t.test('maxConsecutiveErrors client-caused failures in a row, pipelined, close with 1008; each answered first', async (t) => {
  const { server, client } = await echoServer(t)
  burst(client, [
    { type: 'echo', id: 'ok', payload: { text: 'fine' } },
    { type: 'echo', id: 1, payload: { text: 1 } },
    { id: 2 },
    '{"type":"echo","id":3,"payload":{}}',
    { type: 'echo', id: 4, payload: null },
    { type: 'echo', id: 5, payload: { text: [] } }
  ])
  const closed = await closedWithin(client, 5000)
  t.equal(closed?.code, 1008, 'a client that keeps sending invalid frames violated policy')
  t.equal(closed?.reason, 'too many invalid frames')
  const ids = client.frames.filter((f) => f.type === 'error').map((f) => f.id)
  t.same(ids, [1, 2, 3, 4, 5], 'every failure answered before the close')
  t.ok(client.frames.some((f) => f.type === 'echo_result' && f.id === 'ok'))
  await waitFor(() => server.app.wsRouter.connectionCount === 0)
  t.equal(server.app.wsRouter.getStats().connections.closedByCode['1008'], 1)
  const line = server.logs.find((l) => l.msg === 'closing websocket after too many consecutive errors')
  t.match(line, { level: 40, code: 1008, consecutiveErrors: 5 })
})

t.test('handler failures (throws, timeouts) in a row, pipelined, close with 1011', async (t) => {
  const server = await startServer({ handlerTimeoutMs: 100 }, (app) => {
    app.wsRouter.on('throws', () => { throw new Error('boom') })
    app.wsRouter.on('hangs', () => new Promise(() => {}))
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  burst(client, [{ type: 'hangs', id: 0 }, { type: 'throws', id: 1 }, { type: 'throws', id: 2 }, { type: 'throws', id: 3 }, { type: 'hangs', id: 4 }])
  const closed = await closedWithin(client, 5000)
  t.equal(closed?.code, 1011)
  t.same(client.frames.filter((f) => f.type === 'error').map((f) => f.id).sort(), [0, 1, 2, 3, 4])
})

t.test('a success of an async handler resets only the failures that arrived before it', async (t) => {
  let release: () => void = () => {}
  const server = await startServer({}, (app) => {
    app.wsRouter.on('echo', { schema: Echo }, (payload) => payload)
    app.wsRouter.on('later', async () => { await new Promise<void>((resolve) => { release = resolve }); return { done: true } })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  // later (pending), then 4 failures: the pending success, arriving first, must not wipe them.
  burst(client, [{ type: 'later', id: 'L' }, ...[0, 1, 2, 3].map((i) => ({ type: 'echo', id: i, payload: {} }))])
  await waitFor(() => client.frames.filter((f) => f.type === 'error').length === 4)
  release()
  await client.next((f) => f.id === 'L')
  client.send({ type: 'echo', id: 'fifth', payload: {} })
  const closed = await closedWithin(client, 5000)
  t.equal(closed?.code, 1008, 'the fifth failure in arrival order closes, whatever finished meanwhile')
})
