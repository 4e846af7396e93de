import t from 'tap'
import Fastify from 'fastify'
import { buildConfig } from '../../lib/options.js'
import { WsRouter } from '../../lib/router.js'
import { stubRouter } from '../helpers/stub-socket.js'
import { engineOf } from '../helpers/internals.js'

// What a built-in is given instead of the router (lib/builtin-host.ts):
// each function on a stub socket.

t.test('sendFrame by connection id: the request id on the frame; NOT_OPEN, counted and logged, once the connection is gone', async (t) => {
  const { router, logs, open } = stubRouter()
  const host = engineOf(router).builtins
  const { socket, id } = open('alice')
  socket.sent.length = 0
  t.same(await host.sendFrame(id, 'agent_thinking', 'req-1', { runId: 'r' }), { ok: true })
  t.same(socket.frames().map((f) => [f.type, f.id, f.payload]), [['agent_thinking', 'req-1', { runId: 'r' }]])
  t.ok(host.isOpen(id))
  socket.finishClose(1000)
  t.notOk(host.isOpen(id))
  t.same(await host.sendFrame(id, 'agent_completed', 'req-1', {}), { ok: false, reason: 'NOT_OPEN' })
  t.equal(router.getStats().sends.failed.NOT_OPEN, 1)
  t.equal(logs.filter((l) => l.msg.startsWith('websocket send failed')).length, 1)
})

t.test('closeNormally: 1000, no counter, no log line; rooms left at once; the close listener told once with the id', async (t) => {
  const { router, logs, open } = stubRouter()
  const host = engineOf(router).builtins
  const closed: string[] = []
  host.onConnectionClosed((connectionId) => closed.push(connectionId))
  const { socket, id } = open('alice')
  t.ok(host.join(id, 'r'))
  t.equal(host.roomCount(id), 1)
  host.closeNormally(id, 'disconnect requested')
  t.same(socket.closes, [{ code: 1000, reason: 'disconnect requested' }])
  t.notOk(host.isMember(id, 'r'), 'left the room before the handshake ended')
  t.same(closed, [], 'released only when the socket closes')
  socket.finishClose(1000)
  socket.finishClose(1000)
  t.same(closed, [id])
  t.equal(logs.filter((l) => l.msg.startsWith('closing websocket')).length, 0)
  host.closeNormally(id, 'again')
  t.equal(socket.closes.length, 1, 'an unknown connection is left alone')
})

t.test('on, alias and counters reach the router the app sees', async (t) => {
  const router = new WsRouter(buildConfig({ environment: 'test' }), Fastify({ logger: false }).log)
  const host = engineOf(router).builtins
  host.on('hello', {}, () => undefined)
  host.alias('hi', 'hello')
  t.ok(router.hasHandler('hello'))
  host.countBuiltin('typing.broadcast')
  host.countClientError('E_RENDER')
  const stats = router.getStats()
  t.equal(stats.builtins['typing.broadcast'], 1)
  t.equal(stats.clientErrors.E_RENDER, 1)
})
