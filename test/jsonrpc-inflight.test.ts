import t from 'tap'
import WebSocket from 'ws'
import { startServer } from './helpers/server.js'
import { delay } from './helpers/wait.js'

// Issue 9: JSON-RPC calls and envelope handlers share one in-flight rule:
// at maxInFlight running calls the connection stops reading (as for
// envelope handlers) instead of refusing every later call with -32002.

t.test('at maxInFlight JSON-RPC calls, reading pauses; a later call waits, then is served', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const server = await startServer({ path: '/rpc', protocol: 'jsonrpc', maxInFlight: 2 }, (app) => {
    app.wsRouter.method('wait', async () => { await gate; return 'done' })
    app.wsRouter.method('now', () => 'now')
  })
  t.teardown(server.close)
  const ws = new WebSocket(server.url)
  t.teardown(() => ws.terminate())
  const answers: Array<{ id: number, result?: string, error?: { code: number } }> = []
  ws.on('message', (data) => answers.push(JSON.parse(data.toString())))
  await new Promise((resolve) => ws.once('open', resolve))
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'wait', id: 1 }))
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'wait', id: 2 }))
  await delay(100)
  // A later read: the server is not reading while two calls run.
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'now', id: 3 }))
  await delay(200)
  t.same(answers, [], 'the third call is neither refused nor answered while reading is paused')
  release()
  while (answers.length < 3) await delay(5)
  t.same(answers.map((a) => [a.id, a.result ?? a.error?.code]).sort(), [[1, 'done'], [2, 'done'], [3, 'now']])
  t.equal(server.app.wsRouter.getStats().overloaded, 0)
})

t.test('envelope handlers and JSON-RPC calls share one cap: one of each at maxInFlight 2 pauses reading', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const server = await startServer({ maxInFlight: 2 }, (app) => {
    app.wsRouter.on('slow', async () => { await gate; return { done: true } })
    app.wsRouter.method('wait', async () => { await gate; return 'done' })
  })
  t.teardown(server.close)
  const ws = new WebSocket(server.url)
  t.teardown(() => ws.terminate())
  const answers: Array<Record<string, unknown>> = []
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString())
    if (frame.type !== 'connection_established') answers.push(frame)
  })
  await new Promise((resolve) => ws.once('open', resolve))
  ws.send(JSON.stringify({ type: 'slow', id: 'e1' }))
  ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'wait', id: 1 }))
  await delay(100)
  ws.send(JSON.stringify({ type: 'ping', id: 'p1' }))
  await delay(200)
  t.same(answers, [], 'the ping is neither refused nor answered while reading is paused')
  release()
  while (answers.length < 3) await delay(5)
  t.same(answers.map((a) => a.id).sort(), [1, 'e1', 'p1'].sort())
  t.equal(server.app.wsRouter.getStats().overloaded, 0)
})
