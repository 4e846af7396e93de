import t from 'tap'
import { stubRouter } from '../helpers/stub-socket.js'
import { engineOf } from '../helpers/internals.js'

// The one place the server closes a connection: code, counter and one log
// line together; rooms left at once; closedByCode counts the code sent.

t.test('closeConnection: the code, its counter, one log line, rooms left at once', async (t) => {
  const { router, logs, open } = stubRouter()
  const { socket, id } = open('alice')
  const other = open('bob')
  router.join(id, 'r')
  router.join(other.id, 'r')
  const conn = engineOf(router).connection(id)
  if (conn === undefined) throw new Error('no connection')
  const closed = engineOf(router).closeConnection(conn, { code: 1013, reason: 'client too slow', counter: 'backpressureCloses', level: 'warn', message: 'closing websocket: client does not read fast enough (1013)', fields: { bufferedAmount: 1 } })
  t.ok(closed)
  t.same(socket.closes, [{ code: 1013, reason: 'client too slow' }])
  t.equal(router.getStats().backpressureCloses, 1)
  t.same(logs.filter((l) => l.msg.startsWith('closing websocket')).map((l) => [l.level, l.code, l.bufferedAmount]), [[40, 1013, 1]])
  t.same((await router.members('r')).map((m) => m.userId), ['bob'], 'left the room before the handshake ended')
  t.same(router.connectionsOf('alice'), [], 'and its user list')
  t.notOk(engineOf(router).closeConnection(conn, { code: 1008, reason: 'again', level: 'warn' }), 'closing twice does nothing')
  t.equal(socket.closes.length, 1)
  // The peer never answers: ws reports 1006, the stats the code the server sent.
  socket.finishClose(1006)
  t.same(router.getStats().connections.closedByCode, { 1013: 1 })
  t.equal(router.connectionCount, 1)
})

t.test('a terminate (no close frame) counts 1006', async (t) => {
  const { router, open } = stubRouter()
  const { socket, id } = open()
  const conn = engineOf(router).connection(id)
  if (conn === undefined) throw new Error('no connection')
  engineOf(router).closeConnection(conn, { code: null, reason: 'no pong', counter: 'heartbeatTerminations', level: 'info' })
  t.ok(socket.terminated)
  socket.finishClose(1006)
  t.same(router.getStats().connections.closedByCode, { 1006: 1 })
  t.equal(router.getStats().heartbeat.terminated, 1)
})

t.test('a close the peer started counts the peer\'s code', async (t) => {
  const { router, open } = stubRouter()
  const { socket } = open()
  socket.finishClose(4000)
  t.same(router.getStats().connections.closedByCode, { 4000: 1 })
})
