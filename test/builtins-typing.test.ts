import t from 'tap'
import { typingTrackerOf } from './helpers/internals.js'
import { startServer } from './helpers/server.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'

async function joined (client: TestClient, room: string): Promise<void> {
  const id = `join-${room}-${Math.random()}`
  client.send({ type: 'join', id, payload: { room } })
  await client.next((f) => f.type === 'joined' && f.id === id)
}

/** Send a frame with an id and wait for its ack: the server has handled it. */
async function acked (client: TestClient, type: string, payload: unknown, id: string): Promise<Frame> {
  client.send({ type, id, payload })
  return await client.next((f) => f.id === id && (f.type === 'ack' || f.type === 'error'))
}

const typingFrames = (client: TestClient): unknown[] => client.frames.filter((f) => f.type === 'typing').map((f) => f.payload)

t.test('typing reaches the other members, not the sender; repeats within the throttle are not re-broadcast', async (t) => {
  const server = await startServer({ typingThrottleMs: 300, typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  const carol = await connect(`${server.url}?user=carol`)
  const dave = await connect(`${server.url}?user=dave`)
  t.teardown(() => { for (const c of [alice, bob, carol, dave]) c.ws.terminate() })
  for (const c of [alice, bob, carol]) await joined(c, 'lobby')

  const ack = await acked(alice, 'typing_started', { room: 'lobby' }, 't1')
  t.same(ack.payload, { receivedType: 'typing_started', handled: true })
  t.same((await bob.next('typing')).payload, { room: 'lobby', userId: 'alice', typing: true })
  t.same((await carol.next('typing')).payload, { room: 'lobby', userId: 'alice', typing: true })

  await acked(alice, 'typing_started', { room: 'lobby' }, 't2')
  await acked(alice, 'typing_started', { room: 'lobby' }, 't3')
  await acked(alice, 'typing_stopped', { room: 'lobby' }, 't4')
  t.same((await bob.next('typing')).payload, { room: 'lobby', userId: 'alice', typing: false })
  // Frames to bob keep their order: a re-broadcast start would sit before the stop.
  t.same(typingFrames(bob), [
    { room: 'lobby', userId: 'alice', typing: true },
    { room: 'lobby', userId: 'alice', typing: false }
  ], 'the repeated starts were throttled')
  await carol.next('typing')

  // Past the throttle window, a start that is still going is broadcast again.
  await acked(alice, 'typing_started', { room: 'lobby' }, 't5')
  await bob.next('typing')
  await delay(350)
  await acked(alice, 'typing_started', { room: 'lobby' }, 't6')
  t.same((await bob.next('typing')).payload.typing, true, 're-broadcast after the throttle window')
  t.equal(typingFrames(bob).length, 4)

  t.equal(typingFrames(alice).length, 0, 'the sender never gets its own typing')
  const stats = router.getStats().builtins
  t.equal(stats['typing.broadcast'], 4)
  t.equal(stats['typing.throttled'], 2)

  const refused = await acked(dave, 'typing_started', { room: 'lobby' }, 'd1')
  t.same({ type: refused.type, code: refused.payload.code }, { type: 'error', code: 'FORBIDDEN' }, 'only members may type in a room')
  const refusedStop = await acked(dave, 'typing_stopped', { room: 'lobby' }, 'd2')
  t.equal(refusedStop.payload.code, 'FORBIDDEN')
  const stopWithoutStart = await acked(bob, 'typing_stopped', { room: 'lobby' }, 'b1')
  t.equal(stopWithoutStart.type, 'ack', 'a stop with nothing to stop is acked')
  await delay(30)
  t.equal(typingFrames(alice).length, 0, 'and broadcasts nothing')
})

t.test('a start without a stop expires with typing: false, on one interval that stops when nobody types', async (t) => {
  const server = await startServer({ typingThrottleMs: 0, typingTimeoutMs: 200 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const tracker = typingTrackerOf(router)
  t.ok(tracker, 'the router has its typing state')
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { alice.ws.terminate(); bob.ws.terminate() })
  await joined(alice, 'r')
  await joined(bob, 'r')

  t.equal(tracker?.sweeping, false, 'no interval while nobody types')
  const startedAt = Date.now()
  await acked(alice, 'typing_started', { room: 'r' }, 's')
  t.equal((await bob.next('typing')).payload.typing, true)
  t.equal(tracker?.sweeping, true)
  const expired = await bob.next('typing', 2000)
  const elapsed = Date.now() - startedAt
  t.same(expired.payload, { room: 'r', userId: 'alice', typing: false })
  t.ok(elapsed >= 200, `not before typingTimeoutMs (${elapsed} ms)`)
  t.equal(router.getStats().builtins['typing.expired'], 1)
  t.equal(tracker?.size, 0)
  t.equal(tracker?.connections, 0)
  t.equal(tracker?.sweeping, false, 'the interval stopped with the last indicator')

  // A repeated start pushes the expiry back.
  await acked(alice, 'typing_started', { room: 'r' }, 's2')
  await bob.next('typing')
  const renewedAt = Date.now()
  await delay(100)
  await acked(alice, 'typing_started', { room: 'r' }, 's3')
  await bob.next('typing')
  await delay(100)
  t.equal(typingFrames(bob).filter((p) => (p as { typing: boolean }).typing === false).length, 1, 'not expired 200 ms after the first of two starts')
  const renewedExpiry = await bob.next((f) => f.type === 'typing' && f.payload.typing === false, 2000)
  t.ok(Date.now() - renewedAt >= 300, 'expired counting from the last start')
  t.equal(renewedExpiry.payload.userId, 'alice')
})

t.test('a connection that closes stops its typing everywhere', async (t) => {
  const server = await startServer({ typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const tracker = typingTrackerOf(router)
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { alice.ws.terminate(); bob.ws.terminate() })
  for (const room of ['a', 'b']) {
    await joined(alice, room)
    await joined(bob, room)
    await acked(alice, 'typing_started', { room }, `s-${room}`)
  }
  await bob.next('typing')
  await bob.next('typing')
  t.equal(tracker?.size, 2)
  alice.ws.close()
  const stops = [await bob.next('typing'), await bob.next('typing')].map((f) => f.payload)
  t.same(stops.sort((x, y) => x.room.localeCompare(y.room)), [
    { room: 'a', userId: 'alice', typing: false },
    { room: 'b', userId: 'alice', typing: false }
  ])
  await waitFor(() => tracker?.connections === 0)
  t.equal(tracker?.size, 0)
  t.equal(tracker?.sweeping, false)
  t.equal(router.getStats().builtins['typing.expired'], undefined, 'stopped by the close, not by expiry')
})

t.test('a user typing in a second tab continues the same indicator', async (t) => {
  const server = await startServer({ typingThrottleMs: 60_000, typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const tracker = typingTrackerOf(server.app.wsRouter)
  const tab1 = await connect(`${server.url}?user=alice`)
  const tab2 = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { for (const c of [tab1, tab2, bob]) c.ws.terminate() })
  for (const c of [tab1, tab2, bob]) await joined(c, 'r')
  await acked(tab1, 'typing_started', { room: 'r' }, '1')
  await bob.next('typing')
  await tab2.next('typing')
  await acked(tab2, 'typing_started', { room: 'r' }, '2')
  t.equal(server.app.wsRouter.getStats().builtins['typing.throttled'], 1, 'same user, same room: throttled')
  tab1.ws.close()
  await tab1.closed
  await delay(50)
  t.equal(typingFrames(bob).length, 1, 'the tab that took over is still typing')
  t.equal(tracker?.size, 1)
  tab2.ws.close()
  t.same((await bob.next((f) => f.type === 'typing' && f.payload.typing === false)).payload, { room: 'r', userId: 'alice', typing: false })
  await waitFor(() => tracker?.connections === 0)
})
