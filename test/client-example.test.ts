// The example server (examples/app.ts) driven by the SDK's own clients:
// fastify-ws-router/client over real sockets with a JWT from a token
// function, and fastify-ws-router/testing over injectWS. Its AsyncAPI
// document is checked in test/asyncapi.test.ts (one load of the parser).
import t from 'tap'
import WebSocket from 'ws'
import { buildApp } from '../examples/app.js'
import { signToken } from '../examples/auth.js'
import { createClient, ClientError, type AgentEvent, type ClientState } from '../lib/client/index.js'
import { connectTestClient } from '../lib/testing.js'
import { logSink } from './helpers/server.js'

const SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz'
const ENV = { NODE_ENV: 'production', AUTH_SECRET: SECRET, ALLOWED_ORIGINS: 'https://app.example.com', LOG_LEVEL: 'info' }

t.test('the example over real sockets: JWT from a token function, echo, a coded failure, rooms, the demo agent', async (t) => {
  const app = await buildApp({ ...ENV }, { logStream: logSink().stream })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  let tokens = 0
  const client = createClient({
    url: `ws://127.0.0.1:${address.port}/ws`,
    WebSocket,
    token: () => { tokens++; return signToken(SECRET, 'alice') }
  })
  t.teardown(() => { client.close() })
  await new Promise<void>((resolve) => { client.on('state', (state: ClientState) => { if (state === 'open') resolve() }) })
  t.equal(client.userId, 'alice', 'identified by the JWT sent as the bearer subprotocol')
  t.equal(tokens, 1)
  t.same(await client.request('echo', { text: 'hello' }), { text: 'hello' })
  t.match(await client.request('whoami'), { userId: 'alice', connectionId: client.connectionId })
  const failure = await client.request('fail').catch((err: unknown) => err)
  t.ok(failure instanceof ClientError && failure.code === 'DEMO_FAILURE', 'the example\'s coded error')

  await client.join('lobby')
  const bob = await connectTestClient(app, { headers: { authorization: `Bearer ${signToken(SECRET, 'bob')}` } })
  t.teardown(() => bob.close())
  await bob.request('join', { room: 'lobby' })
  const ack = await client.request('user_message', { room: 'lobby', text: 'hi bob' })
  t.equal(ack.deliveredTo, 1)
  const message = await bob.expectFrame('message')
  t.match(message.payload, { room: 'lobby', userId: 'alice', text: 'hi bob' })

  const events: AgentEvent[] = []
  for await (const event of client.startAgent('what is (2 + 3) * 4?')) events.push(event)
  const last = events.at(-1)
  t.equal(events[0]?.type, 'agent_started')
  t.equal(events.filter((e) => e.type === 'agent_completed').length, 1)
  t.same(last?.type === 'agent_completed' ? last.payload.finalResponse : undefined, { text: '(2 + 3) * 4 = 20' })
})
