import t from 'tap'
import { stubRouter } from '../helpers/stub-socket.js'
import { engineOf } from '../helpers/internals.js'

// The connection's flow control: reading pauses at maxInFlight running
// handlers or calls, and resumes under it (never on a closed socket).

t.test('hold at the cap, resume under it', async (t) => {
  const { router, open } = stubRouter()
  const { socket, id } = open()
  const conn = engineOf(router).connection(id)
  if (conn === undefined) throw new Error('no connection')
  const running = [{ cancel: () => {} }, { cancel: () => {} }]
  conn.addPending(running[0] as never)
  conn.holdReadingIfFull(2)
  t.notOk(socket.paused, 'under the cap: still reading')
  conn.addPending(running[1] as never)
  conn.holdReadingIfFull(2)
  t.ok(socket.paused && conn.readingPaused, 'at the cap: paused')
  conn.resumeReadingIfRoom(2)
  t.ok(socket.paused, 'still at the cap: still paused')
  conn.deletePending(running[0] as never)
  conn.resumeReadingIfRoom(2)
  t.notOk(socket.paused || conn.readingPaused, 'under the cap again: reading')
  conn.addPending(running[0] as never)
  conn.holdReadingIfFull(2)
  socket.readyState = 2
  conn.deletePending(running[0] as never)
  conn.resumeReadingIfRoom(2)
  t.notOk(conn.readingPaused)
  t.ok(socket.paused, 'a closing socket is not resumed')
})
