import t from 'tap'
import { stubRouter } from '../helpers/stub-socket.js'
import { engineOf, heartbeatTick } from '../helpers/internals.js'

// Liveness with an injected clock: one heartbeat pass at a chosen time.

t.test('a silent connection is terminated, a live one pinged, a paused one spared', async (t) => {
  // The real interval is far off: only the injected passes run.
  const { router, logs, open } = stubRouter({ heartbeatIntervalMs: 60_000, livenessWindowMs: 120_000 })
  const silent = open('silent')
  const live = open('live')
  const busy = open('busy')
  const start = Date.now()
  const liveConn = engineOf(router).connection(live.id)
  const busyConn = engineOf(router).connection(busy.id)
  if (liveConn === undefined || busyConn === undefined) throw new Error('no connection')
  heartbeatTick(router, start + 60_000)
  t.same([silent.socket.pings, live.socket.pings, busy.socket.pings], [1, 1, 1], 'everyone pinged within the window')
  live.socket.emit('pong')
  liveConn.lastSeenAt = start + 125_000
  busyConn.readingPaused = true
  heartbeatTick(router, start + 130_000)
  t.ok(silent.socket.terminated, 'no pong within the window: terminated')
  t.notOk(live.socket.terminated)
  t.notOk(busy.socket.terminated, 'reading paused by the router: busy, not dead')
  t.equal(router.getStats().heartbeat.terminated, 1)
  t.equal(logs.filter((l) => l.msg === 'terminating websocket: no pong within the liveness window').length, 1)
  for (const { socket } of [silent, live, busy]) socket.finishClose(1006)
  t.equal(router.connectionCount, 0)
})

t.test('idle timeout closes with 1001; connection age asks to reconnect, then 1012', async (t) => {
  const { router, open } = stubRouter({ heartbeatIntervalMs: 60_000, livenessWindowMs: 120_000, idleTimeoutMs: 100_000, maxConnectionAgeMs: 200_000 })
  const idle = open('idle')
  const old = open('old')
  const start = Date.now()
  const oldConn = engineOf(router).connection(old.id)
  if (oldConn === undefined) throw new Error('no connection')
  oldConn.lastFrameAt = start + 200_000
  heartbeatTick(router, start + 100_001)
  t.same(idle.socket.closes, [{ code: 1001, reason: 'idle timeout' }])
  t.equal(router.getStats().idleCloses, 1)
  oldConn.lastSeenAt = start + 200_000
  heartbeatTick(router, start + 200_000)
  t.equal(old.socket.frames().at(-1)?.type, 'reconnect')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(old.socket.closes, [{ code: 1012, reason: 'max_connection_age' }])
  for (const { socket } of [idle, old]) socket.finishClose(1006)
})
