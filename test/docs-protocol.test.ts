// Issue 10 §5: docs/protocol.md and docs/api.md say what the code does. Each
// check reads the behaviour off the wire and the claim out of the doc.
import t from 'tap'
import { readFileSync } from 'node:fs'
import WebSocket from 'ws'
import { buildApp } from '../examples/app.js'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'

const protocol = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8')
const api = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8')

/** The `message` column of the JSON-RPC error table row for `code`. */
function documentedMessage (code: number): string | undefined {
  const row = protocol.split('\n').find((line) => line.startsWith(`| \`${code}\` |`))
  return row?.split('|')[2]?.trim().replace(/^`|`$/g, '')
}

async function rpcAnswer (url: string, frames: string[]): Promise<Array<{ error?: { code: number, message: string }, id: unknown }>> {
  const ws = new WebSocket(url)
  const answers: Array<{ error?: { code: number, message: string }, id: unknown }> = []
  ws.on('message', (data) => answers.push(JSON.parse(data.toString())))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  for (const frame of frames) ws.send(frame)
  const deadline = Date.now() + 5000
  while (answers.length < frames.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  ws.terminate()
  return answers
}

t.test('protocol.md: the -32001 and -32002 rows carry the messages the router sends', async (t) => {
  const server = await startServer({ protocol: 'jsonrpc', rateLimit: { messagesPerSecond: 0.001, burst: 2 }, maxInFlight: 1 }, (app) => {
    app.wsRouter.method('slow', async (_params, ctx) => { await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) })
  })
  t.teardown(server.close)
  const call = (id: number): string => JSON.stringify({ jsonrpc: '2.0', method: 'slow', id })
  // burst 2: the first runs (and holds the only slot), the second is over maxInFlight, the third over the rate.
  const answers = await rpcAnswer(server.url, [call(1), call(2), call(3)])
  const byCode = new Map(answers.filter((answer) => answer.error !== undefined).map((answer) => [answer.error?.code, answer.error?.message]))
  t.ok(byCode.has(-32001) && byCode.has(-32002), `both codes were sent (${JSON.stringify([...byCode])})`)
  for (const code of [-32001, -32002]) t.equal(documentedMessage(code), byCode.get(code), `${code}: the doc's message is the wire's`)
})

t.test('protocol.md: every JSON-RPC method its examples call exists, on /rpc of the example or in a snippet beside it', async (t) => {
  const start = protocol.indexOf('## JSON-RPC 2.0')
  const section = protocol.slice(start, protocol.indexOf('\n## ', start + 10))
  const called = new Set([...section.matchAll(/"method":\s*"([^"]+)"/g)].map((match) => match[1] as string))
  const registeredInDoc = new Set([...section.matchAll(/\.method\('([^']+)'/g)].map((match) => match[1] as string))
  const app = await buildApp({ NODE_ENV: 'development', LOG_LEVEL: 'silent' })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  for (const method of called) {
    if (registeredInDoc.has(method)) {
      t.pass(`${method}: registered in a snippet of the section`)
      continue
    }
    const [answer] = await rpcAnswer(`ws://127.0.0.1:${port}/rpc?user=doc`, [JSON.stringify({ jsonrpc: '2.0', method, params: [1, 2], id: 1 })])
    t.not(answer?.error?.code, -32601, `${method}: the example's /rpc has it`)
  }
})

t.test('protocol.md: the legacy alias example needs legacyAliases, which the example server does not set', async (t) => {
  const section = protocol.slice(protocol.indexOf('### Legacy aliases'), protocol.indexOf('## JSON-RPC 2.0'))
  t.match(section, /example server does \*\*not\*\*\s+set it/, 'the doc says so')
  const app = await buildApp({ NODE_ENV: 'development', LOG_LEVEL: 'silent' })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = await connect(`ws://127.0.0.1:${port}/ws?user=doc`)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'chat', id: 'c', payload: { room: 'r', text: 'old client' } })
  t.same((await client.next((frame) => frame.id === 'c')).payload, { receivedType: 'chat', handled: false }, 'and indeed: chat is unregistered there')
})

t.test('protocol.md: duplicate keys resolve to the last one, as documented', async (t) => {
  t.match(protocol, /resolves to its \*\*last\*\* occurrence/)
  const server = await startServer({}, (app) => {
    app.wsRouter.on('echo', (payload) => payload)
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.sendRaw('{"type":"whoami","type":"echo","id":"d","payload":{"text":"a","text":"b"}}')
  const answer = await client.next((frame) => frame.id === 'd')
  t.equal(answer.type, 'echo_result', 'the last type wins')
  t.same(answer.payload, { text: 'b' }, 'the last payload key wins')
})

t.test('api.md: a value returned after reply() is not sent, and the doc says so', async (t) => {
  t.notMatch(api, /value is sent as a second reply/, 'the old claim is gone')
  t.match(api, /returns a value after\s+calling `reply\(\)`, that value is\s+\*\*not\*\* sent/)
  const server = await startServer({}, (app) => {
    app.wsRouter.on('both', async (_payload, ctx) => {
      await ctx.reply({ from: 'reply' })
      return { from: 'return' }
    })
  })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'both', id: 'b' })
  t.same((await client.next('both_result')).payload, { from: 'reply' })
  client.send({ type: 'ping', id: 'after' })
  await client.next('pong')
  t.equal(client.frames.filter((frame) => frame.id === 'b').length, 1, 'one answer on the wire')
  t.equal(server.app.wsRouter.getStats().sends.failed.ALREADY_ANSWERED ?? 0, 0, 'and no failed send is counted for it')
})
