import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter, WsRouterError, type WsRouterOptions } from '../lib/index.js'
import { defineContract, routeOptions } from '../lib/contracts.js'
import { connectTestClient, RAW_FRAME } from '../lib/testing.js'
import { ClientError } from '../lib/client/index.js'

const contract = defineContract({
  messages: { echo: { payload: Type.Object({ text: Type.String({ minLength: 1 }) }), reply: Type.Object({ text: Type.String() }) } }
})

async function build (options: WsRouterOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(wsRouter, { environment: 'test', ...options })
  app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => ({ text: payload.text }))
  app.wsRouter.on('shout', async (_payload, ctx) => {
    await ctx.send('announcement', { loud: true })
  })
  app.wsRouter.on('fail', () => { throw new WsRouterError('NOPE', 'no') })
  return app
}

t.test('connects over injectWS with query and headers; connection_established is the first frame', async (t) => {
  const app = await build({ authenticate: (request) => request.headers['x-user'] === 'alice' ? { userId: 'alice' } : null })
  t.teardown(() => app.close())
  const client = await connectTestClient<typeof contract>(app, { headers: { 'x-user': 'alice' }, query: { lang: 'en' } })
  t.equal(client.frames[0]?.type, 'connection_established', 'listeners were on before the upgrade')
  t.equal(client.userId, 'alice')
  t.equal(client.connectionId, client.established?.connectionId)
  t.equal(client.established?.protocolVersion, 1)
  t.same(await client.request('echo', { text: 'hi' }), { text: 'hi' })
  const error = await client.request('echo', { text: '' }).catch((err: unknown) => err)
  t.ok(error instanceof ClientError && error.code === 'VALIDATION_FAILED', 'rejects with the wire code')
  await t.rejects(connectTestClient(app, { headers: { 'x-user': 'mallory' } }), /401/, 'a refused upgrade rejects with its status')
})

t.test('expectFrame takes each frame once, expectNoFrame fails on a frame; on() sees server frames', async (t) => {
  const app = await build()
  t.teardown(() => app.close())
  const client = await connectTestClient(app, { query: { user: 'bob' } })
  const seen: unknown[] = []
  const off = client.on('announcement', (payload) => { seen.push(payload) })
  client.send('shout')
  client.send('shout')
  const first = await client.expectFrame('announcement')
  const second = await client.expectFrame((f) => f.type === 'announcement')
  t.not(first, second, 'two frames, each taken once')
  t.same(seen, [{ loud: true }, { loud: true }])
  off()
  await client.expectNoFrame('announcement', 30)
  await t.rejects(client.expectFrame('announcement', { timeoutMs: 20 }), /No frame "announcement" within 20 ms; received: connection_established, announcement, announcement/)
  client.send('shout')
  await t.rejects(client.expectNoFrame('announcement', 2000), /Unexpected frame/, 'fails as soon as the frame arrives')
  client.sendRaw('not json')
  t.equal(((await client.expectFrame('error')).payload as { code: string }).code, 'INVALID_JSON')
  const closed = await client.close()
  t.equal(closed.code, 1000)
  await t.rejects(client.request('echo', { text: 'late' }), { code: 'CLOSED' })
})

t.test('JSON-RPC responses are recorded raw; agent runs stream as with the real client', async (t) => {
  const app = Fastify()
  await app.register(wsRouter, {
    environment: 'test',
    protocol: 'jsonrpc',
    agent: async function * (input) { yield { type: 'thinking', reasoning: input }; return { ok: true } }
  })
  app.wsRouter.method('sum', { params: Type.Array(Type.Number()) }, (params) => params.reduce((a, b) => a + b, 0))
  t.teardown(() => app.close())
  const rpc = await connectTestClient(app, { awaitEstablished: false })
  rpc.sendRaw({ jsonrpc: '2.0', method: 'sum', params: [1, 2], id: 1 })
  const raw = await rpc.expectFrame(RAW_FRAME)
  t.same(JSON.parse(raw.payload as string), { jsonrpc: '2.0', result: 3, id: 1 })

  const agents = await build({ agent: async function * (input) { yield { type: 'thinking', reasoning: input }; return { ok: true } } })
  t.teardown(() => agents.close())
  const client = await connectTestClient(agents)
  const types: string[] = []
  for await (const event of client.startAgent('go')) types.push(event.type)
  t.same(types, ['agent_started', 'agent_thinking', 'agent_completed'])
})
