import t, { type Test } from 'tap'
import { Type } from '@sinclair/typebox'
import { startServer, type TestServer } from './helpers/server.js'
import { connect, type TestClient } from './helpers/client.js'

let server: TestServer

t.before(async () => {
  server = await startServer({ maxPayloadBytes: 64 * 1024 }, (app) => {
    app.wsRouter.on('echo', { schema: Type.Object({ text: Type.String({ minLength: 1 }), count: Type.Optional(Type.Integer()) }) }, (payload) => payload)
    app.wsRouter.on('x', (payload) => ({ got: payload }))
  })
})
t.teardown(() => server.close())

async function fresh (t: Test): Promise<TestClient> {
  const client = await connect(server.url)
  await client.next('connection_established')
  t.teardown(() => client.ws.terminate())
  return client
}

/** Send a ping and check the connection still answers. */
async function stillAnswers (t: Test, client: TestClient, id: string): Promise<void> {
  client.send({ type: 'ping', id })
  const pong = await client.next((f) => f.type === 'pong' && f.id === id)
  t.type(pong.payload.serverTime, 'number', 'connection still answers ping')
}

t.test('connection_established greets the client', async (t) => {
  const client = await connect(server.url + '?user=bob')
  t.teardown(() => client.ws.terminate())
  const hello = await client.next('connection_established')
  t.match(hello.payload, { userId: 'bob', protocolVersion: 1, heartbeatIntervalMs: Number, maxPayloadBytes: 65536 })
  t.type(hello.payload.connectionId, 'string')
  t.type(hello.timestamp, 'number')
  t.notOk('id' in hello)
})

t.test('ping → pong with the id, heartbeat → heartbeat_ack', async (t) => {
  const client = await fresh(t)
  client.send({ type: 'ping', id: 'p1' })
  const pong = await client.next('pong')
  t.equal(pong.id, 'p1')
  client.send({ type: 'heartbeat', id: 7 })
  const ack = await client.next('heartbeat_ack')
  t.equal(ack.id, 7)
  t.equal(ack.payload.status, 'healthy')
  t.type(ack.payload.serverTime, 'number')
})

t.test('a client pong or heartbeat_ack without id gets nothing back; with id an ack', async (t) => {
  const client = await fresh(t)
  client.send({ type: 'pong' })
  client.send({ type: 'heartbeat_ack' })
  client.send({ type: 'pong', id: 'x1' })
  const ack = await client.next('ack')
  t.same(ack.payload, { receivedType: 'pong', handled: true })
  t.equal(ack.id, 'x1')
  await stillAnswers(t, client, 'after')
  t.equal(client.frames.filter((f) => f.type !== 'connection_established' && f.type !== 'pong').length, 1, 'only the one ack')
})

t.test('not json → INVALID_JSON, connection stays open, next ping answered', async (t) => {
  const client = await fresh(t)
  client.sendRaw('not json')
  const error = await client.next('error')
  t.equal(error.payload.code, 'INVALID_JSON')
  t.type(error.payload.ref, 'string')
  t.notOk('id' in error)
  await stillAnswers(t, client, 'p')
})

t.test('[] on an auto route is an empty JSON-RPC batch: one -32600', async (t) => {
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  const answer = new Promise<unknown>((resolve) => client.ws.once('message', (data) => resolve(JSON.parse(data.toString()))))
  client.sendRaw('[]')
  t.same(await answer, { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null })
})

t.test('[] on an envelope route → INVALID_MESSAGE', async (t) => {
  const envelopeOnly = await startServer({ protocol: 'envelope' })
  t.teardown(envelopeOnly.close)
  const client = await connect(envelopeOnly.url)
  t.teardown(() => client.ws.terminate())
  client.sendRaw('[]')
  t.equal((await client.next('error')).payload.code, 'INVALID_MESSAGE')
})

for (const raw of ['null', '"x"', '{}', '{"type":""}', '{"type":5}', '42', 'true', `{"type":"${'a'.repeat(65)}"}`, '{"type":"ping","id":""}', '{"type":"ping","id":1.5}', '{"type":"ping","id":{}}']) {
  t.test(`${raw.slice(0, 40)} → INVALID_MESSAGE`, async (t) => {
    const client = await fresh(t)
    client.sendRaw(raw)
    const error = await client.next('error')
    t.equal(error.payload.code, 'INVALID_MESSAGE')
    t.type(error.payload.message, 'string')
    await stillAnswers(t, client, 'p')
  })
}

t.test('an invalid type with a readable id answers with that id', async (t) => {
  const client = await fresh(t)
  client.sendRaw('{"type":5,"id":"q9"}')
  const error = await client.next('error')
  t.equal(error.payload.code, 'INVALID_MESSAGE')
  t.equal(error.id, 'q9')
})

t.test('__proto__ in a payload is refused; Object.prototype untouched', async (t) => {
  const client = await fresh(t)
  client.sendRaw('{"type":"x","id":"pp","payload":{"__proto__":{"admin":true}}}')
  const error = await client.next('error')
  t.equal(error.payload.code, 'FORBIDDEN_KEY')
  t.equal(error.id, 'pp', 'the frame id is still answered')
  t.equal(({} as Record<string, unknown>).admin, undefined)
  client.sendRaw('{"type":"x","id":"cp","payload":{"constructor":{"prototype":{"admin":true}}}}')
  const second = await client.next((f) => f.type === 'error' && f.id === 'cp')
  t.equal(second.payload.code, 'FORBIDDEN_KEY')
  t.equal(({} as Record<string, unknown>).admin, undefined)
  await stillAnswers(t, client, 'p')
})

t.test('a 10 000-deep nested payload is refused, process alive', async (t) => {
  const client = await fresh(t)
  const deep = '{"type":"x","id":"deep","payload":' + '['.repeat(10_000) + ']'.repeat(10_000) + '}'
  client.sendRaw(deep)
  const error = await client.next('error')
  t.equal(error.payload.code, 'MAX_DEPTH_EXCEEDED')
  t.equal(error.id, 'deep')
  const objects = '{"type":"x","payload":' + '{"a":'.repeat(5000) + '1' + '}'.repeat(5000) + '}'
  client.sendRaw(objects)
  const second = await client.next('error')
  t.equal(second.payload.code, 'MAX_DEPTH_EXCEEDED')
  await stillAnswers(t, client, 'p')
})

t.test('nesting up to maxDepth is accepted', async (t) => {
  const client = await fresh(t)
  // the envelope is level 1: 1 + 1 (payload) + 30 = 32 levels
  const payload = '{"a":'.repeat(30) + '1' + '}'.repeat(30)
  client.sendRaw(`{"type":"x","id":"ok","payload":{"nest":${payload}}}`)
  const reply = await client.next('x_result')
  t.equal(reply.id, 'ok')
})

t.test('1e400 in a payload is refused as non-finite', async (t) => {
  const client = await fresh(t)
  client.sendRaw('{"type":"x","id":"n","payload":{"n":1e400}}')
  const error = await client.next('error')
  t.equal(error.payload.code, 'NON_FINITE_NUMBER')
  t.equal(error.id, 'n')
  client.sendRaw(`{"type":"x","id":"m","payload":{"n":-${'9'.repeat(400)}}}`)
  const second = await client.next((f) => f.type === 'error' && f.id === 'm')
  t.equal(second.payload.code, 'NON_FINITE_NUMBER')
  client.sendRaw('{"type":"x","id":"fine","payload":{"n":1e300}}')
  const reply = await client.next('x_result')
  t.equal(reply.payload.got.n, 1e300, 'large finite numbers pass')
})

t.test('binary frame → BINARY_NOT_SUPPORTED', async (t) => {
  const client = await fresh(t)
  client.sendRaw(Buffer.from('{"type":"ping","id":1}'), true)
  const error = await client.next('error')
  t.equal(error.payload.code, 'BINARY_NOT_SUPPORTED')
  await stillAnswers(t, client, 'p')
})

t.test('frame over maxPayloadBytes → close 1009', async (t) => {
  const client = await connect(server.url)
  const big = JSON.stringify({ type: 'x', payload: 'a'.repeat(70 * 1024) })
  client.sendRaw(big)
  const closed = await client.closed
  t.equal(closed.code, 1009)
  const other = await fresh(t)
  await stillAnswers(t, other, 'other')
})

t.test('payload failing its schema → VALIDATION_FAILED with the path', async (t) => {
  const client = await fresh(t)
  client.send({ type: 'echo', id: 'v', payload: { text: '', count: 'three' } })
  const error = await client.next('error')
  t.equal(error.payload.code, 'VALIDATION_FAILED')
  t.equal(error.id, 'v')
  const paths = error.payload.details.map((d: { path: string }) => d.path)
  t.ok(paths.includes('/text'), 'names /text')
  t.ok(paths.includes('/count'), 'names /count')
  client.send({ type: 'echo', id: 'missing' })
  const second = await client.next((f) => f.type === 'error' && f.id === 'missing')
  t.equal(second.payload.code, 'VALIDATION_FAILED')
  t.equal(second.payload.details[0].path, '/')
  client.send({ type: 'echo', id: 'good', payload: { text: 'hi' } })
  const reply = await client.next('echo_result')
  t.same(reply.payload, { text: 'hi' })
})

t.test('unknown type with id → ack handled:false; without id → nothing', async (t) => {
  const client = await fresh(t)
  client.send({ type: 'nope' })
  client.send({ type: 'nope', id: 'u1' })
  const ack = await client.next('ack')
  t.equal(ack.id, 'u1')
  t.same(ack.payload, { receivedType: 'nope', handled: false })
  await stillAnswers(t, client, 'p')
  t.equal(client.frames.filter((f) => f.type === 'ack').length, 1)
})

t.test('other top-level fields are ignored', async (t) => {
  const client = await fresh(t)
  client.send({ type: 'ping', id: 'extra', foo: 1, bar: { baz: true } })
  const pong = await client.next('pong')
  t.equal(pong.id, 'extra')
})
