import t from 'tap'
import Fastify from 'fastify'
import { registerBuiltins } from '../lib/handlers/index.js'
import { buildConfig } from '../lib/options.js'
import { WsRouter } from '../lib/router.js'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

t.test('connect is acknowledged with the connection and user ids', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.ws.terminate())
  const established = await client.next('connection_established')
  client.send({ type: 'connect', id: 'c1' })
  const ack = await client.next('connection_ack')
  t.equal(ack.id, 'c1')
  t.same(ack.payload, { status: 'connected', connectionId: established.payload.connectionId, userId: 'alice' })
  client.send({ type: 'connect', id: 'c2', payload: {} })
  t.equal((await client.next((f) => f.type === 'connection_ack' && f.id === 'c2')).payload.status, 'connected', 'an empty payload is accepted')
  client.send({ type: 'connect', id: 'c3', payload: 'hello' })
  t.equal((await client.next((f) => f.type === 'error' && f.id === 'c3')).payload.code, 'VALIDATION_FAILED')
})

t.test('disconnect is acknowledged, then the server closes with 1000', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  client.send({ type: 'disconnect', id: 'bye' })
  const closed = await client.closed
  t.equal(closed.code, 1000)
  const last = client.frames.at(-1)
  t.equal(last?.type, 'connection_ack', 'the ack arrived before the close')
  t.equal(last?.id, 'bye')
  t.same(last?.payload, { status: 'disconnect_acknowledged' })
  await waitFor(() => router.connectionCount === 0)
  const stats = router.getStats()
  t.equal(stats.connections.closedByCode['1000'], 1)
  t.same(stats.types.disconnect, { received: 1, handled: 1, failed: 0 })
})

t.test('client_error is counted by code and logged once, bounded', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.ws.terminate())
  const longMessage = 'é'.repeat(5000)
  const context = { component: 'Chat', trace: 'x'.repeat(5000) }
  client.send({ type: 'client_error', id: 'e1', payload: { code: 'RENDER_FAILED', message: longMessage, context } })
  const ack = await client.next('ack')
  t.same({ id: ack.id, payload: ack.payload }, { id: 'e1', payload: { receivedType: 'client_error', handled: true } })
  client.send({ type: 'client_error', payload: { code: 'RENDER_FAILED', message: 'again' } })
  client.send({ type: 'client_error', id: 'e3', payload: { code: 'UPLOAD_FAILED', message: 'network' } })
  await client.next((f) => f.type === 'ack' && f.id === 'e3')
  t.same(router.getStats().clientErrors, { RENDER_FAILED: 2, UPLOAD_FAILED: 1 })

  const lines = server.logs.filter((line) => line.msg === 'client reported an error')
  t.equal(lines.length, 3, 'one log line per report')
  const first = lines[0] as Record<string, any>
  t.match(first, { level: 40, clientCode: 'RENDER_FAILED', userId: 'alice', connectionId: String, messageId: 'e1', environment: 'test' })
  t.ok(Buffer.byteLength(first.clientMessage) <= 1024, 'message cut to 1 KiB')
  t.ok(Buffer.byteLength(first.clientMessage) > 1000, 'and no shorter than it must be')
  t.match(first.clientMessage, /^é+$/, 'never cut inside a character')
  t.type(first.context, 'string')
  t.ok(Buffer.byteLength(first.context) <= 1024, 'context cut to 1 KiB')
  t.match(first.context, /^\{"component":"Chat","trace":"x+$/)
  t.notOk('context' in (lines[1] as object), 'no context, no field')

  client.send({ type: 'client_error', id: 'bad', payload: { code: 'C'.repeat(65), message: 'm' } })
  t.equal((await client.next((f) => f.type === 'error' && f.id === 'bad')).payload.code, 'VALIDATION_FAILED')
  t.equal(router.getStats().clientErrors.C, undefined)
})

t.test('a built-in switched off answers as an unknown type', async (t) => {
  const server = await startServer({ builtins: { typing: false } })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'join', id: 'j', payload: { room: 'r' } })
  await client.next('joined')
  client.send({ type: 'typing_started', id: 't1', payload: { room: 'r' } })
  const ack = await client.next('ack')
  t.same({ id: ack.id, payload: ack.payload }, { id: 't1', payload: { receivedType: 'typing_started', handled: false } })
  t.notOk(server.app.wsRouter.hasHandler('typing_stopped'))
  client.send({ type: 'connect', id: 'c' })
  t.equal((await client.next('connection_ack')).id, 'c', 'the other built-ins are on')
})

t.test('a built-in can be replaced with override: true', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('connect', { replyType: 'welcome', override: true }, (_payload, ctx) => ({ hello: ctx.userId }))
  })
  t.teardown(server.close)
  const client = await connect(`${server.url}?user=bob`)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'connect', id: 1 })
  const reply = await client.next((f) => f.id === 1)
  t.same({ type: reply.type, payload: reply.payload }, { type: 'welcome', payload: { hello: 'bob' } })
})

t.test('registerBuiltins registers every built-in that is not switched off', async (t) => {
  const log = Fastify({ logger: false }).log
  const all = new WsRouter(buildConfig({ environment: 'test' }), log)
  registerBuiltins(all)
  const types = ['connect', 'disconnect', 'join', 'leave', 'typing_started', 'typing_stopped', 'user_message', 'start_agent', 'stop_agent', 'client_error']
  t.same(types.filter((type) => !all.hasHandler(type)), [], 'all on by default')
  const some = new WsRouter(buildConfig({ environment: 'test', builtins: { typing: false, agent: false, rooms: false } }), log)
  registerBuiltins(some)
  t.same(types.filter((type) => some.hasHandler(type)), ['connect', 'disconnect', 'user_message', 'client_error'])
})
