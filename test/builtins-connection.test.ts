import t from 'tap'
import Fastify from 'fastify'
import { registerBuiltins } from '../lib/handlers/index.js'
import { buildConfig } from '../lib/options.js'
import { WsRouter } from '../lib/router.js'
import { startServer } from './helpers/server.js'
import { connectTestClient } from '../lib/testing.js'
import { ClientError } from '../lib/client/index.js'
import { waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

/** The code of the error a request was refused with. */
async function refusedWith (promise: Promise<unknown>): Promise<string> {
  const outcome = await promise.then(() => null, (err: unknown) => err)
  if (!(outcome instanceof ClientError)) throw new Error(`expected a ClientError, got ${String(outcome)}`)
  return outcome.code
}

t.test('connect is acknowledged with the connection and user ids', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const client = await connectTestClient(server.app, { query: { user: 'alice' } })
  const ack = await client.request('connect')
  t.same(ack, { status: 'connected', connectionId: client.established?.connectionId, userId: 'alice' })
  t.same((await client.expectFrame('connection_ack')).id, 1, 'answered with the request id')
  t.equal((await client.request('connect', {})).status, 'connected', 'an empty payload is accepted')
  t.equal(await refusedWith(client.request('connect', 'hello' as unknown as Record<string, never>)), 'VALIDATION_FAILED')
})

t.test('disconnect is acknowledged, then the server closes with 1000', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connectTestClient(server.app)
  t.same(await client.request('disconnect'), { status: 'disconnect_acknowledged' })
  const closed = await client.closed
  t.equal(closed.code, 1000)
  const last = client.frames.at(-1)
  t.equal(last?.type, 'connection_ack', 'the ack arrived before the close')
  t.equal(last?.id, 1)
  await waitFor(() => router.connectionCount === 0)
  const stats = router.getStats()
  t.equal(stats.connections.closedByCode['1000'], 1)
  t.same(stats.types.disconnect, { received: 1, handled: 1, failed: 0 })
})

t.test('client_error is counted by code and logged once, bounded', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connectTestClient(server.app, { query: { user: 'alice' } })
  const longMessage = 'é'.repeat(5000)
  const context = { component: 'Chat', trace: 'x'.repeat(5000) }
  t.same(await client.request('client_error', { code: 'RENDER_FAILED', message: longMessage, context }), { receivedType: 'client_error', handled: true })
  const firstId = client.frames.find((f) => f.type === 'ack')?.id
  client.send('client_error', { code: 'RENDER_FAILED', message: 'again' })
  await client.request('client_error', { code: 'UPLOAD_FAILED', message: 'network' })
  t.same(router.getStats().clientErrors, { RENDER_FAILED: 2, UPLOAD_FAILED: 1 })

  const lines = server.logs.filter((line) => line.msg === 'client reported an error')
  t.equal(lines.length, 3, 'one log line per report')
  const first = lines[0] as Record<string, any>
  t.match(first, { level: 40, clientCode: 'RENDER_FAILED', userId: 'alice', connectionId: String, messageId: firstId, environment: 'test' })
  t.ok(Buffer.byteLength(first.clientMessage) <= 1024, 'message cut to 1 KiB')
  t.ok(Buffer.byteLength(first.clientMessage) > 1000, 'and no shorter than it must be')
  t.match(first.clientMessage, /^é+$/, 'never cut inside a character')
  t.type(first.context, 'string')
  t.ok(Buffer.byteLength(first.context) <= 1024, 'context cut to 1 KiB')
  t.match(first.context, /^\{"component":"Chat","trace":"x+$/)
  t.notOk('context' in (lines[1] as object), 'no context, no field')

  t.equal(await refusedWith(client.request('client_error', { code: 'C'.repeat(65), message: 'm' })), 'VALIDATION_FAILED')
  t.equal(router.getStats().clientErrors.C, undefined)
})

t.test('a built-in switched off answers as an unknown type', async (t) => {
  const server = await startServer({ builtins: { typing: false } })
  t.teardown(server.close)
  const client = await connectTestClient(server.app)
  await client.request('join', { room: 'r' })
  t.same(await client.request('typing_started', { room: 'r' }), { receivedType: 'typing_started', handled: false })
  t.notOk(server.app.wsRouter.hasHandler('typing_stopped'))
  t.equal((await client.request('connect')).status, 'connected', 'the other built-ins are on')
})

t.test('a built-in can be replaced with override: true', async (t) => {
  const server = await startServer({}, (app) => {
    app.wsRouter.on('connect', { replyType: 'welcome', override: true }, (_payload, ctx) => ({ hello: ctx.userId }))
  })
  t.teardown(server.close)
  const client = await connectTestClient(server.app, { query: { user: 'bob' } })
  t.same(await client.request('connect') as unknown, { hello: 'bob' })
  const reply = await client.expectFrame((f) => f.id === 1)
  t.same({ type: reply.type, payload: reply.payload }, { type: 'welcome', payload: { hello: 'bob' } })
})

t.test('registerBuiltins registers every built-in that is not switched off', async (t) => {
  const log = Fastify({ logger: false }).log
  const all = new WsRouter(buildConfig({ environment: 'test' }), log)
  registerBuiltins(engineOf(all).builtins)
  const types = ['connect', 'disconnect', 'join', 'leave', 'typing_started', 'typing_stopped', 'user_message', 'start_agent', 'stop_agent', 'client_error']
  t.same(types.filter((type) => !all.hasHandler(type)), [], 'all on by default')
  const some = new WsRouter(buildConfig({ environment: 'test', builtins: { typing: false, agent: false, rooms: false } }), log)
  registerBuiltins(engineOf(some).builtins)
  t.same(types.filter((type) => some.hasHandler(type)), ['connect', 'disconnect', 'user_message', 'client_error'])
})
