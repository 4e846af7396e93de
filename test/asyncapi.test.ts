import t from 'tap'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Parser } from '@asyncapi/parser'
import { asyncApiDocument, defineContract, routeOptions, wsRouter } from '../lib/index.js'
import { buildApp } from '../examples/app.js'
import { logSink } from './helpers/server.js'

const contract = defineContract({
  messages: {
    echo: { payload: Type.Object({ text: Type.String({ minLength: 1 }) }), reply: Type.Object({ text: Type.String() }) },
    'chat.send': { payload: Type.Object({ room: Type.String(), text: Type.String() }) }
  },
  events: { 'chat.message': Type.Object({ room: Type.String(), text: Type.String() }) }
})

/** The `payload` property of a parsed message's envelope schema. */
function payloadOf (message: { payload: () => { json: () => unknown } | undefined } | undefined): unknown {
  return (message?.payload()?.json() as { properties?: { payload?: unknown } } | undefined)?.properties?.payload
}

t.test('the AsyncAPI 3.0 document of a router is valid and describes its types, replies, events, errors and close codes', async (t) => {
  const app = Fastify()
  await app.register(wsRouter, { environment: 'test' })
  app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => ({ text: payload.text }))
  app.wsRouter.on('chat.send', routeOptions(contract, 'chat.send'), () => {})
  await app.ready()
  t.teardown(() => app.close())

  const doc = asyncApiDocument(app.wsRouter, { title: 'Chat', version: '2.1.0', host: 'chat.example.com', contract })
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc))
  const errors = diagnostics.filter((d) => d.severity === 0)
  t.same(errors.map((d) => `${d.path.join('/')}: ${d.message}`), [], 'no validation errors')
  t.ok(document, 'parsed')
  if (document === undefined) return
  t.equal(document.version(), '3.0.0')
  t.equal(document.info().title(), 'Chat')
  t.equal(document.info().version(), '2.1.0')

  const operations = new Map(document.operations().all().map((op) => [op.id(), op]))
  for (const type of app.wsRouter.routes().map((r) => r.type)) {
    t.ok(operations.has(`receive.${type.replace(/[^A-Za-z0-9_-]/g, '_')}`), `an operation for "${type}"`)
  }
  const echo = operations.get('receive.echo')
  t.equal(echo?.action(), 'receive')
  const replies = echo?.reply()?.messages().all().map((m) => m.name())
  t.same(replies, ['echo_result', 'error', 'ack'], 'the reply, the error frame, and ack')
  const echoReply = document.components().messages().all().find((m) => m.id() === 'reply.echo')
  t.match(payloadOf(echoReply), { type: 'object', required: ['text'], properties: { text: { type: 'string' } } })
  // Exactly the registry's schemas (the parser adds its own ids to what it returns).
  const raw = (doc.components as { messages: Record<string, { payload: { properties: { payload: unknown } } }> }).messages
  t.same(raw['reply.echo']?.payload.properties.payload, { type: 'object', required: ['text'], properties: { text: { type: 'string' } } })
  t.same(raw['client.echo']?.payload.properties.payload, { type: 'object', required: ['text'], properties: { text: { type: 'string', minLength: 1 } } })

  t.ok(operations.has('send.chat_message'), 'the contract\'s event')
  t.equal(operations.get('send.chat_message')?.action(), 'send')
  for (const event of ['connection_established', 'message', 'typing', 'reconnect', 'agent_completed']) t.ok(operations.has(`send.${event}`), `built-in event ${event}`)
  const join = document.components().messages().all().find((m) => m.id() === 'reply.join')
  t.equal(join?.name(), 'joined', 'a built-in reply type')
  t.match(payloadOf(join), { required: ['room'] }, 'the built-in reply schema from the built-in contract')
  const errorFrame = document.components().messages().all().find((m) => m.id() === 'error')
  t.same((payloadOf(errorFrame) as { required?: string[] }).required, ['code', 'message'])

  const channel = document.channels().all()[0]
  t.equal(channel?.address(), '/ws')
  const closeCodes = (channel?.json() as { 'x-close-codes': Array<{ code: number }> })['x-close-codes'].map((c) => c.code)
  t.same(closeCodes, [1000, 1001, 1008, 1009, 1011, 1012, 1013, 4001])
  t.equal(document.servers().all()[0]?.host(), 'chat.example.com')
})

t.test('the example serves its AsyncAPI document, and it is valid', async (t) => {
  const app = await buildApp({ NODE_ENV: 'production', ALLOWED_ORIGINS: 'https://app.example.com', AUTH_SECRET: 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz', LOG_LEVEL: 'info' }, { logStream: logSink().stream })
  t.teardown(() => app.close())
  const response = await app.inject('/asyncapi.json')
  t.equal(response.statusCode, 200)
  const { document, diagnostics } = await new Parser().parse(response.body)
  t.same(diagnostics.filter((d) => d.severity === 0).map((d) => d.message), [])
  const ids = document?.operations().all().map((op) => op.id()) ?? []
  for (const id of ['receive.echo', 'receive.whoami', 'receive.fail', 'receive.start_agent', 'send.agent_completed']) t.ok(ids.includes(id), id)
})
