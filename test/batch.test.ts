import t from 'tap'
import { Type } from '@sinclair/typebox'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'

t.test('a batch with a failing middle item: items run in order, each answered, then batch_result', async (t) => {
  const order: string[] = []
  const server = await startServer({}, (app) => {
    app.wsRouter.on('step', { schema: Type.Object({ name: Type.String() }) }, async (payload) => {
      order.push(payload.name)
      if (payload.name === 'bad') throw new Error('middle item failed')
      await new Promise((resolve) => setTimeout(resolve, 5))
      return { done: payload.name }
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({
    type: 'batch',
    id: 'b1',
    payload: {
      messages: [
        { type: 'step', id: 's1', payload: { name: 'first' } },
        { type: 'step', id: 's2', payload: { name: 'bad' } },
        { type: 'step', id: 's3', payload: { name: 'last' } },
        { type: 'step', payload: { name: 'quiet' } },
        { type: 'batch', id: 'nested', payload: { messages: [] } },
        'not an envelope',
        { type: 'step', id: 's4', payload: { name: 5 } },
        { type: 'nope', id: 's5' }
      ]
    }
  })
  const result = await client.next('batch_result')
  t.equal(result.id, 'b1')
  t.same(order, ['first', 'bad', 'last', 'quiet'], 'in order, the failing one does not stop the next')
  t.same(result.payload.results.map((r: { index: number, id?: string, ok: boolean, error?: { code: string } }) => [r.index, r.id, r.ok, r.error?.code]), [
    [0, 's1', true, undefined],
    [1, 's2', false, 'HANDLER_ERROR'],
    [2, 's3', true, undefined],
    [3, undefined, true, undefined],
    [4, 'nested', false, 'INVALID_MESSAGE'],
    [5, undefined, false, 'INVALID_MESSAGE'],
    [6, 's4', false, 'VALIDATION_FAILED'],
    [7, 's5', false, 'UNKNOWN_TYPE']
  ])
  t.same(client.frames.filter((f) => f.type === 'step_result').map((f) => f.payload.done), ['first', 'last', 'quiet'], 'the items\' own replies flowed')
  t.equal(client.frames.find((f) => f.type === 'error' && f.id === 's2')?.payload.code, 'HANDLER_ERROR')
  t.equal(client.frames.find((f) => f.type === 'ack' && f.id === 's5')?.payload.handled, false)
  const batchIndex = client.frames.findIndex((f) => f.type === 'batch_result')
  const lastItemIndex = client.frames.findIndex((f) => f.id === 's5')
  t.ok(lastItemIndex < batchIndex, 'batch_result comes after the items\' own answers')
})

t.test('maxBatchSize → BATCH_TOO_LARGE', async (t) => {
  const server = await startServer({ maxBatchSize: 3 })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'batch', id: 'big', payload: { messages: Array.from({ length: 4 }, (_, i) => ({ type: 'ping', id: i })) } })
  const error = await client.next('error')
  t.equal(error.payload.code, 'BATCH_TOO_LARGE')
  t.equal(error.id, 'big')
  t.notOk(client.frames.some((f) => f.type === 'pong'), 'no item ran')
})

t.test('batch items take rate-limit tokens like frames', async (t) => {
  const server = await startServer({ rateLimit: { messagesPerSecond: 1, burst: 3 } })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'batch', id: 'b', payload: { messages: Array.from({ length: 5 }, (_, i) => ({ type: 'ping', id: i })) } })
  const result = await client.next('batch_result')
  const codes = result.payload.results.map((r: { ok: boolean, error?: { code: string } }) => r.ok ? 'ok' : r.error?.code)
  t.same(codes, ['ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED'], 'the batch frame took one token, its items the rest')
})

t.test('legacy aliases route client types; server event names do not', async (t) => {
  const seen: string[] = []
  const server = await startServer({ legacyAliases: true }, (app) => {
    app.wsRouter.on('user_message', { override: true }, (_payload, ctx) => { seen.push(ctx.type); return { routed: true } })
    app.wsRouter.on('start_agent', { override: true }, () => { seen.push('start_agent'); return { started: true } })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  for (const alias of ['chat', 'chat_message', 'message', 'user', 'user_input']) {
    client.send({ type: alias, id: alias })
    t.equal((await client.next((f) => f.id === alias)).type, 'user_message_result', `${alias} → user_message`)
  }
  client.send({ type: 'agent_request', id: 'ar' })
  t.equal((await client.next((f) => f.id === 'ar')).type, 'start_agent_result')
  for (const serverEvent of ['agent_started', 'message_ack', 'agent_completed']) {
    client.send({ type: serverEvent, id: serverEvent })
    const answer = await client.next((f) => f.id === serverEvent)
    t.same([answer.type, answer.payload], ['ack', { receivedType: serverEvent, handled: false }], `${serverEvent} starts nothing`)
  }
  t.same(seen, ['user_message', 'user_message', 'user_message', 'user_message', 'user_message', 'start_agent'])
})

t.test('without legacyAliases an old name is an unknown type', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('user_message', { override: true }, () => ({ routed: true }))
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'chat', id: 'c' })
  t.same((await client.next((f) => f.id === 'c')).payload, { receivedType: 'chat', handled: false })
})
