import t from 'tap'
import { startServer, type TestServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

// Issue 12 follow-up: a connection adopted on the resume path (a resumed
// session, or a fresh one after a refused resume) is the request's
// connection too, so `ctx.request.checkConnection()` reads its socket
// instead of answering "no socket".

async function withStatusRoute (): Promise<TestServer> {
  return await startServer({ resume: true }, (app) => {
    app.wsRouter.on('status', (_payload, ctx) => ctx.request.checkConnection())
  })
}

const CONNECTED = { state: 'OPEN', connected: true, alive: true, writable: true, bufferedAmount: Number, lastSeenMs: Number }

t.test('checkConnection() on a resumed connection reads its socket', async (t) => {
  const server = await withStatusRoute()
  t.teardown(server.close)
  const first = await connect(`${server.url}?user=alice`)
  const hello = await first.next('connection_established')
  const token = hello.payload.resume.token as string
  first.ws.terminate()
  await waitFor(() => (server.app.wsRouter.getStats().resume?.parked ?? 0) === 1, 5000, 'the session to be parked')
  const client = await connect(`${server.url}?user=alice&resume=${encodeURIComponent(token)}&lastSeq=0`)
  t.teardown(() => client.ws.terminate())
  const again = await client.next('connection_established')
  t.equal(again.payload.connectionId, hello.payload.connectionId, 'the session was resumed')
  await client.next('resumed')
  client.send({ type: 'status', id: 1 })
  const reply = await client.next('status_result')
  t.match(reply.payload, CONNECTED)
  t.ok(typeof reply.payload.lastSeenMs === 'number' && reply.payload.lastSeenMs >= 0 && reply.payload.lastSeenMs < 5000, `lastSeenMs ${reply.payload.lastSeenMs}`)
})

t.test('checkConnection() on a connection whose resume was refused (fresh session) reads its socket', async (t) => {
  const server = await withStatusRoute()
  t.teardown(server.close)
  const client = await connect(`${server.url}?user=bob&resume=not-a-token&lastSeq=0`)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  const failed = await client.next('resume_failed')
  t.equal(failed.payload.reason, 'unknown')
  client.send({ type: 'status', id: 1 })
  const reply = await client.next('status_result')
  t.match(reply.payload, CONNECTED)
  t.ok(typeof reply.payload.lastSeenMs === 'number' && reply.payload.lastSeenMs >= 0 && reply.payload.lastSeenMs < 5000, `lastSeenMs ${reply.payload.lastSeenMs}`)
})
