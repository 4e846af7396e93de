import t from 'tap'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import { WsRouterError, type SendResult } from '../lib/index.js'
import { ClientError } from '../lib/client/index.js'
import { connectTestClient, type TestClient } from '../lib/testing.js'
import { startServer } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

/** The error a request was rejected with. */
async function refusal (promise: Promise<unknown>): Promise<ClientError> {
  const outcome = await promise.then(() => null, (err: unknown) => err)
  if (!(outcome instanceof ClientError)) throw new Error(`expected a ClientError, got ${String(outcome)}`)
  return outcome
}

/** The id the client gave the frame that the server answered with `code`. */
function idOfError (client: TestClient, code: string): string | number | undefined {
  return client.frames.find((f) => f.type === 'error' && (f.payload as { code: string }).code === code)?.id
}

t.test('a handler that throws, rejects or never settles is contained', async (t) => {
  let signalAborted: Promise<unknown> | undefined
  const server = await startServer({ handlerTimeoutMs: 150 }, (app) => {
    app.wsRouter.on('throws', () => { throw new Error('sync boom') })
    app.wsRouter.on('rejects', async () => { throw new Error('async boom') })
    app.wsRouter.on('hangs', (_payload, ctx) => {
      signalAborted = once(ctx.signal, 'abort')
      return new Promise(() => {})
    })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const bystander = await connectTestClient(server.app)

  const thrown = await refusal(client.request('throws'))
  t.equal(thrown.code, 'HANDLER_ERROR')
  t.equal(thrown.message, 'sync boom', 'test preset shows the message')
  t.match(thrown.ref, /^[0-9a-f]{12}$/)
  t.equal(client.frames.find((f) => f.type === 'error')?.id, 1, 'the error carries the request id')

  const rejected = await refusal(client.request('rejects'))
  t.equal(rejected.code, 'HANDLER_ERROR')
  t.equal(rejected.message, 'async boom')

  const hanging = refusal(client.request('hangs'))
  const pong = await client.request('ping')
  t.type(pong.serverTime, 'number', 'a pending handler does not block ping')
  const timedOut = await hanging
  t.equal(timedOut.code, 'HANDLER_TIMEOUT')
  const abortEvent = await signalAborted
  t.ok(Array.isArray(abortEvent), 'the handler signal fired on timeout')

  t.type((await bystander.request('ping')).serverTime, 'number', 'other connections unaffected')
  t.type((await client.request('ping')).serverTime, 'number', 'connection still open')

  // A frame counts as handled once its reply's write has settled, which over
  // injectWS can be just after the client read the reply.
  await waitFor(() => server.app.wsRouter.getStats().types.ping?.handled === 3, 2000, 'the last ping counted')
  const stats = server.app.wsRouter.getStats()
  t.equal(stats.handlerErrors, 2)
  t.equal(stats.handlerTimeouts, 1)
  t.same(stats.types.throws, { received: 1, handled: 0, failed: 1 })
  t.same(stats.types.hangs, { received: 1, handled: 0, failed: 1 })
  t.same(stats.types.ping, { received: 3, handled: 3, failed: 0 })

  const errorLogs = server.logs.filter((line) => line.level === 50)
  t.equal(errorLogs.length, 3, 'one log line per failure')
  for (const line of errorLogs) {
    t.match(line, { connectionId: String, userId: String, messageType: String, messageId: Number, state: 'OPEN', environment: 'test', ref: String })
  }
  const thrownLog = errorLogs.find((line) => line.messageType === 'throws')
  t.match(thrownLog, { ref: thrown.ref, err: { message: 'sync boom', stack: /Error: sync boom/ } }, 'the log line carries the ref and the stack')
})

t.test('production hides unexpected messages but keeps coded ones', async (t) => {
  const server = await startServer({ environment: 'production', allowAnonymous: true }, (app) => {
    app.wsRouter.on('secret', () => { throw new Error('database password is hunter2') })
    app.wsRouter.on('coded', () => { throw new WsRouterError('FORBIDDEN', 'not your room', { room: 'r1' }) })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const hidden = await refusal(client.request('secret'))
  t.equal(hidden.code, 'HANDLER_ERROR')
  t.notMatch(hidden.message, /hunter2/)
  t.type(hidden.ref, 'string')
  const logged = server.logs.find((line) => line.ref === hidden.ref)
  t.match(logged, { err: { message: 'database password is hunter2' } }, 'the log keeps the real message')
  const coded = await refusal(client.request('coded'))
  t.same({ code: coded.code, message: coded.message, details: coded.details }, { code: 'FORBIDDEN', message: 'not your room', details: { room: 'r1' } })
})

t.test('maxConsecutiveErrors failures in a row close with 1011; a success resets the count', async (t) => {
  const server = await startServer({ maxConsecutiveErrors: 5 }, (app) => {
    app.wsRouter.on('boom', () => { throw new Error('boom') })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const failures = Array.from({ length: 4 }, () => refusal(client.request('boom')))
  await client.request('ping')
  for (let i = 0; i < 4; i++) failures.push(refusal(client.request('boom')))
  client.sendRaw('garbage')
  const closed = await client.closed
  t.equal(closed.code, 1011)
  t.same((await Promise.all(failures)).map((err) => err.code), new Array(8).fill('HANDLER_ERROR'), 'every request answered before the close')
  t.equal(client.frames.filter((f) => f.type === 'error').length, 9, 'every failure was answered before the close')
  await waitFor(() => server.app.wsRouter.connectionCount === 0)
  t.equal(server.app.wsRouter.getStats().connections.closedByCode['1011'], 1)
})

t.test('handlers start in arrival order and replies carry their ids', async (t) => {
  const order: number[] = []
  const server = await startServer({}, (app) => {
    app.wsRouter.on('slow', { schema: Type.Object({ n: Type.Integer(), delay: Type.Integer() }) }, async (payload) => {
      order.push(payload.n)
      await new Promise((resolve) => setTimeout(resolve, payload.delay))
      return { n: payload.n }
    })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const resolved: unknown[] = []
  const slow = client.request('slow', { n: 1, delay: 200 }).then((reply) => { resolved.push(reply) })
  const fast = client.request('slow', { n: 2, delay: 10 }).then((reply) => { resolved.push(reply) })
  await Promise.all([slow, fast])
  t.same(order, [1, 2], 'started in arrival order')
  t.same(resolved, [{ n: 2 }, { n: 1 }], 'the fast one is not held behind the slow one, each with its own reply')
  t.same(client.frames.filter((f) => f.type === 'slow_result').map((f) => f.id), [2, 1], 'replies carry their ids')
})

t.test('ctx.reply, ctx.send and return value', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('explicit', { replyType: 'explicit_done' }, async (_payload, ctx) => {
      const pushed = await ctx.send('notice', { hello: true })
      const replied = await ctx.reply({ pushedOk: pushed.ok })
      t.same(replied, { ok: true })
    })
    app.wsRouter.on('quiet', () => undefined)
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const done = await client.request('explicit')
  t.same(done, { pushedOk: true })
  const notice = await client.expectFrame('notice')
  t.notOk('id' in notice)
  const doneFrame = await client.expectFrame('explicit_done')
  t.equal(doneFrame.id, 1, 'the reply type of the route, with the request id')
  t.same(await client.request('quiet'), { receivedType: 'quiet', handled: true }, 'an ack for a handler that returned nothing')
  await client.request('ping')
  t.equal(client.frames.filter((f) => f.id === 1).length, 1, 'no extra ack after an explicit reply')
})

t.test('send after the peer closed → NOT_OPEN, nothing thrown, signal fired', async (t) => {
  let result: Promise<SendResult> | undefined
  let aborted = false
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let started = false
  const server = await startServer({}, (app) => {
    app.wsRouter.on('later', async (_payload, ctx) => {
      started = true
      ctx.signal.addEventListener('abort', () => { aborted = true })
      await gate
      result = ctx.send('late', { x: 1 })
      return { never: 'sent' }
    })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const pending = refusal(client.request('later'))
  await waitFor(() => started)
  await client.close()
  t.equal((await pending).code, 'DISCONNECTED', 'the client learns its request is lost')
  await waitFor(() => aborted, 2000, 'the handler signal')
  t.ok(aborted, 'disconnect fired the handler signal')
  release()
  await waitFor(() => result !== undefined)
  t.same(await result, { ok: false, reason: 'NOT_OPEN' })
  const stats = server.app.wsRouter.getStats()
  t.equal(stats.sends.failed.NOT_OPEN, 1)
  t.equal(stats.connections.open, 0)
  t.equal(server.app.wsRouter.connectionCount, 0)
})

t.test('a reply that fails its reply schema is not sent: INVALID_OUTBOUND, client told REPLY_FAILED', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('typed', { replySchema: Type.Object({ total: Type.Number() }) }, () => ({ total: 'many' }) as unknown as { total: number })
    app.wsRouter.on('bigint', () => ({ n: 10n }))
    app.wsRouter.on('huge', () => ({ blob: 'x'.repeat(2 * 1024 * 1024) }))
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const failed = await refusal(client.request('typed'))
  t.equal(failed.code, 'REPLY_FAILED')
  t.match(failed.message, /INVALID_OUTBOUND/)
  t.notOk(client.frames.some((f) => f.type === 'typed_result'), 'the bad reply was never sent')
  t.match((await refusal(client.request('bigint'))).message, /SERIALIZE/)
  t.match((await refusal(client.request('huge'))).message, /TOO_LARGE/)
  const stats = server.app.wsRouter.getStats()
  t.same(stats.sends.failed, { INVALID_OUTBOUND: 1, SERIALIZE: 1, TOO_LARGE: 1 })
  t.same(stats.types.typed, { received: 1, handled: 0, failed: 1 })
  const sendLogs = server.logs.filter((line) => line.msg === 'websocket send failed')
  t.equal(sendLogs.length, 3, 'each failed send logged once')
  t.match(sendLogs[0], { reason: 'INVALID_OUTBOUND', messageType: 'typed_result', messageId: idOfError(client, 'REPLY_FAILED'), details: [{ path: '/total' }] })
})

t.test('the success path logs nothing', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('fine', { schema: Type.Object({ a: Type.Number() }) }, (payload) => ({ b: payload.a + 1 }))
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  const before = server.logs.length
  const fine = Array.from({ length: 50 }, (_, i) => client.request('fine', { a: i }))
  const pings = Array.from({ length: 50 }, () => client.request('ping'))
  t.same(await Promise.all(fine), Array.from({ length: 50 }, (_, i) => ({ b: i + 1 })))
  await Promise.all(pings)
  t.equal(client.frames.filter((f) => f.type === 'fine_result').length, 50)
  t.same(server.logs.slice(before), [], 'no log line for 100 successful frames')
  await client.close()
})

t.test('a second reply is refused with ALREADY_ANSWERED, counted and logged, never sent', async (t) => {
  let second: SendResult | undefined
  const server = await startServer({}, (app) => {
    app.wsRouter.on('twice', async (_payload, ctx) => {
      await ctx.reply({ first: true })
      second = await ctx.reply({ second: true })
    })
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  t.same(await client.request('twice'), { first: true })
  await waitFor(() => second !== undefined)
  t.same(second, { ok: false, reason: 'ALREADY_ANSWERED' })
  await client.request('ping')
  t.equal(client.frames.filter((f) => f.id === 1).length, 1, 'one answer on the wire')
  t.equal(server.app.wsRouter.getStats().sends.failed.ALREADY_ANSWERED, 1)
  t.equal(server.logs.filter((line) => line.reason === 'ALREADY_ANSWERED').length, 1)
})
