import t from 'tap'
import { sendText, writeNow } from '../../lib/send.js'
import { stubRouter } from '../helpers/stub-socket.js'
import { engineOf } from '../helpers/internals.js'

// The connection part's outbound sends, on a stub socket.

const limits = { maxOutboundBytes: 1000, highWaterMarkBytes: 100, maxBufferedBytes: 400, sendTimeoutMs: 50 }

function connection () {
  const { router, open } = stubRouter()
  const { socket, id } = open()
  const conn = engineOf(router).connection(id)
  if (conn === undefined) throw new Error('no connection')
  socket.sent.length = 0 // connection_established
  return { socket, conn }
}

t.test('writeNow: each outcome at hand-over, never waiting', async (t) => {
  const { socket, conn } = connection()
  t.equal(writeNow(conn, 'a', limits, false), 'WRITTEN', 'an empty buffer after the write')
  socket.bufferedAmount = 50
  t.equal(writeNow(conn, 'b', limits, false), 'BUFFERED', 'queued behind earlier bytes')
  socket.bufferedAmount = 100
  t.equal(writeNow(conn, 'c', limits, true), 'DROPPED', 'droppable over the mark')
  t.equal(writeNow(conn, 'd', limits, false), 'BACKPRESSURE', 'must-deliver over the mark is not waited on')
  socket.bufferedAmount = 90
  t.equal(writeNow(conn, 'x'.repeat(400), limits, false), 'BACKPRESSURE', 'would pass maxBufferedBytes')
  socket.bufferedAmount = 0
  t.equal(writeNow(conn, 'x'.repeat(1001), limits, false), 'TOO_LARGE')
  socket.readyState = 2
  t.equal(writeNow(conn, 'e', limits, false), 'NOT_OPEN')
  t.same(socket.sent, ['a', 'b'], 'only accepted frames reach the socket')
})

t.test('sendText: success only on the write callback; over the mark it waits for drain, then BACKPRESSURE', async (t) => {
  const { socket, conn } = connection()
  socket.holdWrites = true
  const pending = sendText(conn, 'a', limits)
  let settled = false
  pending.then(() => { settled = true }, () => {})
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(settled, 'not a success before ws confirms the write')
  socket.heldCallbacks.shift()?.()
  t.same(await pending, { ok: true })
  socket.holdWrites = false
  socket.bufferedAmount = 150
  const started = Date.now()
  t.same(await sendText(conn, 'b', limits), { ok: false, reason: 'BACKPRESSURE' })
  t.ok(Date.now() - started >= 45, 'waited for drain up to sendTimeoutMs')
  t.same(await sendText(conn, 'c', limits, { droppable: true }), { ok: false, reason: 'DROPPED' })
})

t.test('a send waiting for drain is woken by a write callback under the mark', async (t) => {
  const { socket, conn } = connection()
  socket.bufferedAmount = 150
  const waiting = sendText(conn, 'late', { ...limits, sendTimeoutMs: 5000 })
  socket.bufferedAmount = 0
  conn.writeDone()
  t.same(await waiting, { ok: true })
  t.same(socket.sent, ['late'])
})
