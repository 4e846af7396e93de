import t from 'tap'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import { WsRouterError, type SendResult } from '../lib/index.js'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

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
  const client = await connect(server.url)
  const bystander = await connect(server.url)
  t.teardown(() => { client.ws.terminate(); bystander.ws.terminate() })

  client.send({ type: 'throws', id: 1 })
  const thrown = await client.next('error')
  t.equal(thrown.id, 1)
  t.equal(thrown.payload.code, 'HANDLER_ERROR')
  t.equal(thrown.payload.message, 'sync boom', 'test preset shows the message')
  t.match(thrown.payload.ref, /^[0-9a-f]{12}$/)

  client.send({ type: 'rejects', id: 2 })
  const rejected = await client.next((f) => f.type === 'error' && f.id === 2)
  t.equal(rejected.payload.code, 'HANDLER_ERROR')
  t.equal(rejected.payload.message, 'async boom')

  client.send({ type: 'hangs', id: 3 })
  client.send({ type: 'ping', id: 'during' })
  const pong = await client.next('pong')
  t.equal(pong.id, 'during', 'a pending handler does not block ping')
  const timedOut = await client.next((f) => f.type === 'error' && f.id === 3)
  t.equal(timedOut.payload.code, 'HANDLER_TIMEOUT')
  await signalAborted
  t.pass('the handler signal fired on timeout')

  bystander.send({ type: 'ping', id: 'b' })
  t.equal((await bystander.next('pong')).id, 'b', 'other connections unaffected')
  client.send({ type: 'ping', id: 'after' })
  t.equal((await client.next((f) => f.type === 'pong' && f.id === 'after')).id, 'after', 'connection still open')

  const stats = server.app.wsRouter.getStats()
  t.equal(stats.handlerErrors, 2)
  t.equal(stats.handlerTimeouts, 1)
  t.same(stats.types.throws, { received: 1, handled: 0, failed: 1 })
  t.same(stats.types.hangs, { received: 1, handled: 0, failed: 1 })
  t.equal(stats.types.ping?.handled, 3)

  const errorLogs = server.logs.filter((line) => line.level === 50)
  t.equal(errorLogs.length, 3, 'one log line per failure')
  for (const line of errorLogs) {
    t.match(line, { connectionId: String, userId: String, messageType: String, messageId: Number, state: 'OPEN', environment: 'test', ref: String })
  }
  const thrownLog = errorLogs.find((line) => line.messageType === 'throws')
  t.match(thrownLog, { ref: thrown.payload.ref, err: { message: 'sync boom', stack: /Error: sync boom/ } }, 'the log line carries the ref and the stack')
})

t.test('production hides unexpected messages but keeps coded ones', async (t) => {
  const server = await startServer({ environment: 'production', allowAnonymous: true }, (app) => {
    app.wsRouter.on('secret', () => { throw new Error('database password is hunter2') })
    app.wsRouter.on('coded', () => { throw new WsRouterError('FORBIDDEN', 'not your room', { room: 'r1' }) })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'secret', id: 's' })
  const hidden = await client.next('error')
  t.equal(hidden.payload.code, 'HANDLER_ERROR')
  t.notMatch(hidden.payload.message, /hunter2/)
  t.type(hidden.payload.ref, 'string')
  const logged = server.logs.find((line) => line.ref === hidden.payload.ref)
  t.match(logged, { err: { message: 'database password is hunter2' } }, 'the log keeps the real message')
  client.send({ type: 'coded', id: 'c' })
  const coded = await client.next((f) => f.type === 'error' && f.id === 'c')
  t.same({ code: coded.payload.code, message: coded.payload.message, details: coded.payload.details }, { code: 'FORBIDDEN', message: 'not your room', details: { room: 'r1' } })
})

t.test('maxConsecutiveErrors failures in a row close with 1011; a success resets the count', async (t) => {
  const server = await startServer({ maxConsecutiveErrors: 5 }, (app) => {
    app.wsRouter.on('boom', () => { throw new Error('boom') })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  for (let i = 0; i < 4; i++) client.send({ type: 'boom', id: i })
  client.send({ type: 'ping', id: 'reset' })
  await client.next('pong')
  for (let i = 0; i < 4; i++) client.send({ type: 'boom', id: 10 + i })
  client.sendRaw('garbage')
  const closed = await client.closed
  t.equal(closed.code, 1011)
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
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'slow', id: 'a', payload: { n: 1, delay: 200 } })
  client.send({ type: 'slow', id: 'b', payload: { n: 2, delay: 10 } })
  const first = await client.next('slow_result')
  const second = await client.next('slow_result')
  t.same(order, [1, 2], 'started in arrival order')
  t.same([first.id, second.id], ['b', 'a'], 'the fast one is not held behind the slow one')
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
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'explicit', id: 'e' })
  const notice = await client.next('notice')
  t.notOk('id' in notice)
  const done = await client.next('explicit_done')
  t.same(done.payload, { pushedOk: true })
  t.equal(done.id, 'e')
  client.send({ type: 'quiet', id: 'q' })
  const ack = await client.next('ack')
  t.same(ack.payload, { receivedType: 'quiet', handled: true })
  client.send({ type: 'ping', id: 'z' })
  await client.next('pong')
  t.equal(client.frames.filter((f) => f.id === 'e').length, 1, 'no extra ack after an explicit reply')
})

t.test('send after the peer closed → NOT_OPEN, nothing thrown, signal fired', async (t) => {
  let result: Promise<SendResult> | undefined
  let aborted = false
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const server = await startServer({}, (app) => {
    app.wsRouter.on('later', async (_payload, ctx) => {
      ctx.signal.addEventListener('abort', () => { aborted = true })
      await gate
      result = ctx.send('late', { x: 1 })
      return { never: 'sent' }
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  client.send({ type: 'later', id: 'l' })
  await new Promise((resolve) => setTimeout(resolve, 50))
  client.ws.close()
  await client.closed
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(aborted, 'disconnect fired the handler signal')
  release()
  await new Promise((resolve) => setTimeout(resolve, 20))
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
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'typed', id: 't' })
  const failed = await client.next('error')
  t.equal(failed.id, 't')
  t.equal(failed.payload.code, 'REPLY_FAILED')
  t.match(failed.payload.message, /INVALID_OUTBOUND/)
  t.notOk(client.frames.some((f) => f.type === 'typed_result'), 'the bad reply was never sent')
  client.send({ type: 'bigint', id: 'b' })
  t.match((await client.next((f) => f.type === 'error' && f.id === 'b')).payload.message, /SERIALIZE/)
  client.send({ type: 'huge', id: 'h' })
  t.match((await client.next((f) => f.type === 'error' && f.id === 'h')).payload.message, /TOO_LARGE/)
  const stats = server.app.wsRouter.getStats()
  t.same(stats.sends.failed, { INVALID_OUTBOUND: 1, SERIALIZE: 1, TOO_LARGE: 1 })
  t.same(stats.types.typed, { received: 1, handled: 0, failed: 1 })
  const sendLogs = server.logs.filter((line) => line.msg === 'websocket send failed')
  t.equal(sendLogs.length, 3, 'each failed send logged once')
  t.match(sendLogs[0], { reason: 'INVALID_OUTBOUND', messageType: 'typed_result', messageId: 't', details: [{ path: '/total' }] })
})

t.test('the success path logs nothing', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('fine', { schema: Type.Object({ a: Type.Number() }) }, (payload) => ({ b: payload.a + 1 }))
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  await client.next('connection_established')
  const before = server.logs.length
  for (let i = 0; i < 50; i++) client.send({ type: 'fine', id: i, payload: { a: i } })
  for (let i = 0; i < 50; i++) client.send({ type: 'ping', id: `p${i}` })
  await client.next((f) => f.type === 'pong' && f.id === 'p49')
  t.equal(client.frames.filter((f) => f.type === 'fine_result').length, 50)
  t.same(server.logs.slice(before), [], 'no log line for 100 successful frames')
  client.ws.close()
  await client.closed
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
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'twice', id: 'tw' })
  await client.next('twice_result')
  await waitFor(() => second !== undefined)
  t.same(second, { ok: false, reason: 'ALREADY_ANSWERED' })
  client.send({ type: 'ping', id: 'after' })
  await client.next('pong')
  t.equal(client.frames.filter((f) => f.id === 'tw').length, 1, 'one answer on the wire')
  t.equal(server.app.wsRouter.getStats().sends.failed.ALREADY_ANSWERED, 1)
  t.equal(server.logs.filter((line) => line.reason === 'ALREADY_ANSWERED').length, 1)
})
