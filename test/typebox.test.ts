// Issue 10 §2: schemas from @sinclair/typebox 0.34 and from typebox 1.x (what
// @fastify/type-provider-typebox 6 uses) both work for payload, reply and
// params schemas, compiled once, checked on the wire; one schema is shared by
// an HTTP route and a WebSocket handler.
import t from 'tap'
import Fastify from 'fastify'
import { Type as Type034 } from '@sinclair/typebox'
import Type from 'typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { wsRouter } from '../lib/index.js'
import { schemaFlavour } from '../lib/schema.js'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'

const flavours = [
  {
    name: '@sinclair/typebox 0.34',
    note: Type034.Object({ text: Type034.String({ minLength: 1, maxLength: 20 }), tags: Type034.Optional(Type034.Array(Type034.String())) }),
    total: Type034.Object({ total: Type034.Number() }),
    pair: Type034.Tuple([Type034.Number(), Type034.Number()])
  },
  {
    name: 'typebox 1.x',
    note: Type.Object({ text: Type.String({ minLength: 1, maxLength: 20 }), tags: Type.Optional(Type.Array(Type.String())) }),
    total: Type.Object({ total: Type.Number() }),
    pair: Type.Tuple([Type.Number(), Type.Number()])
  }
] as const

t.test('schemaFlavour tells the two packages apart from the schema alone', async (t) => {
  t.equal(schemaFlavour(flavours[0].note), '0.34')
  t.equal(schemaFlavour(flavours[1].note), '1.x')
  t.equal(schemaFlavour({ type: 'object' }), 'unknown', 'a plain JSON schema is neither')
  t.equal(schemaFlavour(undefined), 'unknown')
})

for (const flavour of flavours) {
  t.test(`${flavour.name}: payload, reply and params schemas are checked on the wire`, async (t) => {
    const server = await startServer({}, (app) => {
      app.wsRouter.on('note', { schema: flavour.note, replySchema: flavour.total }, (payload) => ({ total: payload.text.length + (payload.tags?.length ?? 0) }))
      // The handler's reply is typed by replySchema; a cast lets a wrong one reach the run-time check.
      app.wsRouter.on('bad_reply', { replySchema: flavour.total }, () => ({ total: 'many' }) as unknown as { total: number })
      app.wsRouter.method('add', { params: flavour.pair }, (params) => params[0] + params[1])
    })
    t.teardown(server.close)
    const client = await connect(server.url)
    t.teardown(() => client.ws.terminate())

    client.send({ type: 'note', id: 1, payload: { text: 'hello', tags: ['a'] } })
    t.same((await client.next('note_result')).payload, { total: 6 }, 'a valid payload reaches the handler, its reply passes')
    client.send({ type: 'note', id: 2, payload: { text: '', tags: [3] } })
    const refused = await client.next((frame) => frame.type === 'error' && frame.id === 2)
    t.equal(refused.payload.code, 'VALIDATION_FAILED', 'an invalid payload is refused')
    const paths = (refused.payload.details as Array<{ path: string }>).map((detail) => detail.path)
    t.ok(paths.includes('/text'), `the details name the failing path (${paths.join(', ')})`)
    client.send({ type: 'bad_reply', id: 3 })
    const failed = await client.next((frame) => frame.type === 'error' && frame.id === 3)
    t.equal(failed.payload.code, 'REPLY_FAILED', 'a reply failing its schema is not sent')
    t.match(failed.payload.message, /INVALID_OUTBOUND/)

    client.send({ jsonrpc: '2.0', method: 'add', params: [2, 3], id: 4 })
    t.same(await client.next((frame) => (frame as unknown as { id?: number }).id === 4 && 'result' in frame), { jsonrpc: '2.0', result: 5, id: 4 }, 'JSON-RPC params pass')
    client.send({ jsonrpc: '2.0', method: 'add', params: [2, 'x'], id: 5 })
    const invalid = await client.next((frame) => (frame as unknown as { id?: number }).id === 5) as unknown as { error: { code: number, data: Array<{ path: string }> } }
    t.equal(invalid.error.code, -32602, 'JSON-RPC params failing the schema: -32602')
    t.ok(invalid.error.data.some((detail) => detail.path === '/1'), 'with the failing path')
  })
}

t.test('one typebox 1.x schema shared by an HTTP route (type provider 6) and a WebSocket handler', async (t) => {
  // The docs' example (docs/api.md, "One schema for HTTP and WebSocket").
  const Note = Type.Object({ text: Type.String({ minLength: 1 }) })
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>()
  await app.register(wsRouter, { environment: 'test' })
  app.post('/notes', { schema: { body: Note } }, async (request) => ({ length: request.body.text.length }))
  app.wsRouter.on('note', { schema: Note }, (payload) => ({ length: payload.text.length }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }

  t.same((await app.inject({ method: 'POST', url: '/notes', payload: { text: 'hello' } })).json(), { length: 5 }, 'HTTP: valid')
  t.equal((await app.inject({ method: 'POST', url: '/notes', payload: { text: '' } })).statusCode, 400, 'HTTP: invalid → 400')
  const client = await connect(`ws://127.0.0.1:${port}/ws?user=alice`)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'note', id: 1, payload: { text: 'hello' } })
  t.same((await client.next('note_result')).payload, { length: 5 }, 'WebSocket: valid')
  client.send({ type: 'note', id: 2, payload: { text: '' } })
  t.equal((await client.next('error')).payload.code, 'VALIDATION_FAILED', 'WebSocket: invalid → VALIDATION_FAILED')
})

t.test('a typebox 1.x schema without the typebox package: FST_WSR_TYPEBOX_MISSING, saying what to install', async (t) => {
  const schema = await t.mockImport<typeof import('../lib/schema.js')>('../lib/schema.js', {
    'node:module': {
      createRequire: () => (id: string) => {
        throw Object.assign(new Error(`Cannot find package '${id}'`), { code: 'ERR_MODULE_NOT_FOUND' })
      }
    }
  })
  t.throws(() => schema.compileSchema('note', Type.Object({ text: Type.String() })), {
    code: 'FST_WSR_TYPEBOX_MISSING',
    message: /"note".*typebox\/compile.*npm install typebox/
  })
  t.ok(schema.compileSchema('legacy', Type034.Object({ text: Type034.String() })).Check({ text: 'x' }), '0.34 schemas need nothing else')
})

t.test('a schema neither package compiles is FST_WSR_INVALID_HANDLER at registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsRouter, { environment: 'test' })
  t.throws(() => app.wsRouter.on('odd', { schema: { type: 'object' } as unknown as ReturnType<typeof Type034.Object> }, () => undefined), { code: 'FST_WSR_INVALID_HANDLER', message: /"odd".*schema does not compile/ })
})
