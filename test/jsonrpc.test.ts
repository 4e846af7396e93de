import t from 'tap'
import WebSocket from 'ws'
import { Type } from '@sinclair/typebox'
import { Client } from 'rpc-websockets'
import { JsonRpcError, WsRouterError } from '../lib/index.js'
import { registerSpecMethods } from '../examples/jsonrpc-spec-methods.js'
import { startServer, type TestServer } from './helpers/server.js'
import { delay } from './helpers/wait.js'

let server: TestServer

t.before(async () => {
  server = await startServer({ path: '/rpc', protocol: 'jsonrpc', handlerTimeoutMs: 200 }, (app) => {
    registerSpecMethods(app.wsRouter)
    app.wsRouter.method('fail', () => { throw new Error('secret detail') })
    app.wsRouter.method('app_error', () => { throw new JsonRpcError(-32050, 'Quota exceeded', { limit: 10 }) })
    app.wsRouter.method('coded', () => { throw new WsRouterError('FORBIDDEN', 'nope') })
    app.wsRouter.method('slow', async (_params, ctx) => { await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) })
    app.wsRouter.method('echo', { params: Type.Object({ text: Type.String() }) }, (params, ctx) => ({ text: params.text, userId: ctx.userId }))
  })
})
t.teardown(() => server.close())

/** Open a raw connection; collect every frame as parsed JSON. */
async function open (): Promise<{ ws: WebSocket, frames: unknown[], send: (text: string) => void, next: () => Promise<unknown> }> {
  const ws = new WebSocket(server.url)
  const frames: unknown[] = []
  const waiting: Array<(frame: unknown) => void> = []
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(frame)
    else frames.push(frame)
  })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return {
    ws,
    frames,
    send: (text) => ws.send(text),
    next: async () => frames.length > 0
      ? frames.shift()
      : await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer')), 3000)
        waiting.push((frame) => { clearTimeout(timer); resolve(frame) })
      })
  }
}

/** Section 7 of the JSON-RPC 2.0 specification, verbatim: request text → expected answer (undefined: none). */
const examples: Array<[string, string, unknown]> = [
  ['positional parameters', '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}', { jsonrpc: '2.0', result: 19, id: 1 }],
  ['positional parameters (2)', '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}', { jsonrpc: '2.0', result: -19, id: 2 }],
  ['named parameters', '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}', { jsonrpc: '2.0', result: 19, id: 3 }],
  ['named parameters (2)', '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}', { jsonrpc: '2.0', result: 19, id: 4 }],
  ['a notification', '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', undefined],
  ['a notification (2)', '{"jsonrpc": "2.0", "method": "foobar"}', undefined],
  ['non-existent method', '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: '1' }],
  ['invalid JSON', '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null }],
  ['invalid Request object', '{"jsonrpc": "2.0", "method": 1, "params": "bar"}', { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }],
  ['batch, invalid JSON', '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n  {"jsonrpc": "2.0", "method"\n]', { jsonrpc: '2.0', error: { code: -32700, message: 'Parse error' }, id: null }],
  ['an empty Array', '[]', { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }],
  ['an invalid Batch (but not empty)', '[1]', [{ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }]],
  ['invalid Batch', '[1,2,3]', [1, 2, 3].map(() => ({ jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null }))],
  ['batch', `[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]`, [
    { jsonrpc: '2.0', result: 7, id: '1' },
    { jsonrpc: '2.0', result: 19, id: '2' },
    { jsonrpc: '2.0', error: { code: -32600, message: 'Invalid Request' }, id: null },
    { jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: '5' },
    { jsonrpc: '2.0', result: ['hello', 5], id: '9' }
  ]],
  ['batch (all notifications)', `[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]`, undefined]
]

for (const [name, request, expected] of examples) {
  t.test(`spec §7: ${name}`, async (t) => {
    const client = await open()
    t.teardown(() => client.ws.terminate())
    client.send(request)
    if (expected === undefined) {
      // Nothing may come back: a following call's answer is the first frame.
      client.send('{"jsonrpc": "2.0", "method": "get_data", "id": "probe"}')
      t.same(await client.next(), { jsonrpc: '2.0', result: ['hello', 5], id: 'probe' }, 'no answer to notifications')
      return
    }
    t.same(await client.next(), expected)
  })
}

t.test('a jsonrpc route sends nothing but JSON-RPC (no connection_established)', async (t) => {
  const client = await open()
  t.teardown(() => client.ws.terminate())
  await delay(50)
  t.same(client.frames, [])
})

t.test('-32602 for params failing the schema, positional or named', async (t) => {
  const client = await open()
  t.teardown(() => client.ws.terminate())
  client.send('{"jsonrpc":"2.0","method":"subtract","params":[1,"x"],"id":1}')
  t.match(await client.next(), { error: { code: -32602, message: 'Invalid params', data: Array }, id: 1 })
  client.send('{"jsonrpc":"2.0","method":"subtract","params":{"minuend":1},"id":2}')
  t.match(await client.next(), { error: { code: -32602 }, id: 2 })
})

t.test('-32603 for a throwing method, application errors in -32000..-32099', async (t) => {
  const client = await open()
  t.teardown(() => client.ws.terminate())
  client.send('{"jsonrpc":"2.0","method":"fail","id":1}')
  const failed = await client.next() as { error: { code: number, message: string, data: { ref: string } } }
  t.equal(failed.error.code, -32603)
  t.equal(failed.error.message, 'secret detail', 'the test preset shows the message')
  t.type(failed.error.data.ref, 'string')
  client.send('{"jsonrpc":"2.0","method":"app_error","id":2}')
  t.same(await client.next(), { jsonrpc: '2.0', error: { code: -32050, message: 'Quota exceeded', data: { limit: 10 } }, id: 2 })
  client.send('{"jsonrpc":"2.0","method":"coded","id":3}')
  t.match(await client.next(), { error: { code: -32000, message: 'nope', data: { code: 'FORBIDDEN' } }, id: 3 })
  client.send('{"jsonrpc":"2.0","method":"slow","id":4}')
  t.match(await client.next(), { error: { code: -32003 }, id: 4 })
  client.send('{"jsonrpc":"2.0","method":"fail"}')
  client.send('{"jsonrpc":"2.0","method":"get_data","id":"after"}')
  t.match(await client.next(), { id: 'after' }, 'a failing notification is still never answered')
})

t.test('production hides the message of -32603', async (t) => {
  const prod = await startServer({ path: '/rpc', protocol: 'jsonrpc', environment: 'production', allowAnonymous: true }, (app) => {
    app.wsRouter.method('fail', () => { throw new Error('secret detail') })
  })
  t.teardown(prod.close)
  const ws = new WebSocket(prod.url)
  await new Promise((resolve) => ws.once('open', resolve))
  const answer = new Promise<{ error: { message: string } }>((resolve) => ws.once('message', (data) => resolve(JSON.parse(data.toString()))))
  ws.send('{"jsonrpc":"2.0","method":"fail","id":1}')
  t.equal((await answer).error.message, 'Internal error')
  ws.terminate()
})

t.test('a stock JSON-RPC 2.0 WebSocket client (rpc-websockets) works unchanged', async (t) => {
  const client = new Client(server.url, { autoconnect: true, reconnect: false })
  await new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) })
  t.equal(await client.call('subtract', [42, 23]), 19)
  t.equal(await client.call('subtract', { minuend: 42, subtrahend: 23 }), 19)
  t.same(await client.call('get_data'), ['hello', 5])
  t.same(await client.call('echo', { text: 'hi' }), { text: 'hi', userId: String((await client.call('echo', { text: 'x' }) as { userId: string }).userId) })
  await t.rejects(client.call('foobar'), { code: -32601 })
  await client.notify('update', [1, 2])
  client.close()
})

t.test('JSON-RPC frames on an auto route, envelopes too', async (t) => {
  const auto = await startServer({}, (app) => { registerSpecMethods(app.wsRouter) })
  t.teardown(auto.close)
  const ws = new WebSocket(auto.url)
  const frames: Array<Record<string, unknown>> = []
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())))
  await new Promise((resolve) => ws.once('open', resolve))
  ws.send('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}')
  ws.send('{"type":"ping","id":"p"}')
  const deadline = Date.now() + 3000
  while (frames.length < 3 && Date.now() < deadline) await delay(5)
  t.ok(frames.some((f) => f.type === 'connection_established'))
  t.ok(frames.some((f) => f.result === 19 && f.id === 1))
  t.ok(frames.some((f) => f.type === 'pong' && f.id === 'p'))
  ws.terminate()
})

t.test('maxInFlight applies to JSON-RPC calls: -32002 beyond it', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const busy = await startServer({ path: '/rpc', protocol: 'jsonrpc', maxInFlight: 2 }, (app) => {
    app.wsRouter.method('wait', async () => { await gate; return 'done' })
  })
  t.teardown(busy.close)
  const ws = new WebSocket(busy.url)
  const answers: Array<{ id: number, result?: string, error?: { code: number, message: string } }> = []
  ws.on('message', (data) => answers.push(JSON.parse(data.toString())))
  await new Promise((resolve) => ws.once('open', resolve))
  for (let id = 1; id <= 3; id++) ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'wait', id }))
  while (answers.length < 1) await delay(5)
  t.same(answers[0], { jsonrpc: '2.0', error: { code: -32002, message: 'Too many calls in progress' }, id: 3 })
  release()
  while (answers.length < 3) await delay(5)
  t.same(answers.slice(1).map((a) => a.result), ['done', 'done'])
  ws.terminate()
})
