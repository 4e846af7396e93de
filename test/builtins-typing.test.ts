import t from 'tap'
import { typingTrackerOf } from './helpers/internals.js'
import { startServer } from './helpers/server.js'
import { connectTestClient, type TestClient } from '../lib/testing.js'
import { ClientError, type Frame } from '../lib/client/index.js'
import { delay, waitFor } from './helpers/wait.js'

interface Typing { room: string, userId: string, typing: boolean }

async function joined (client: TestClient, room: string): Promise<void> {
  const reply = await client.request('join', { room })
  if (reply.room !== room) throw new Error(`joined ${reply.room}, not ${room}`)
}

/** Send a typing frame as a request and wait for its answer: the server has handled it. */
async function acked (client: TestClient, type: 'typing_started' | 'typing_stopped', payload: { room: string }): Promise<{ type: 'ack', payload: unknown } | { type: 'error', code: string }> {
  try {
    return { type: 'ack', payload: await client.request(type, payload) }
  } catch (err) {
    if (err instanceof ClientError) return { type: 'error', code: err.code }
    throw err
  }
}

const typingOf = (frame: Frame): Typing => frame.payload as Typing
const typingFrames = (client: TestClient): Typing[] => client.frames.filter((f) => f.type === 'typing').map(typingOf)
const connectAs = (server: { app: Parameters<typeof connectTestClient>[0] }, user: string): Promise<TestClient> => connectTestClient(server.app, { query: { user } })

t.test('typing reaches the other members, not the sender; repeats within the throttle are not re-broadcast', async (t) => {
  const server = await startServer({ typingThrottleMs: 300, typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice = await connectAs(server, 'alice')
  const bob = await connectAs(server, 'bob')
  const carol = await connectAs(server, 'carol')
  const dave = await connectAs(server, 'dave')
  for (const c of [alice, bob, carol]) await joined(c, 'lobby')

  const ack = await acked(alice, 'typing_started', { room: 'lobby' })
  t.same(ack, { type: 'ack', payload: { receivedType: 'typing_started', handled: true } })
  t.same(typingOf(await bob.expectFrame('typing')), { room: 'lobby', userId: 'alice', typing: true })
  t.same(typingOf(await carol.expectFrame('typing')), { room: 'lobby', userId: 'alice', typing: true })

  await acked(alice, 'typing_started', { room: 'lobby' })
  await acked(alice, 'typing_started', { room: 'lobby' })
  await acked(alice, 'typing_stopped', { room: 'lobby' })
  t.same(typingOf(await bob.expectFrame('typing')), { room: 'lobby', userId: 'alice', typing: false })
  // Frames to bob keep their order: a re-broadcast start would sit before the stop.
  t.same(typingFrames(bob), [
    { room: 'lobby', userId: 'alice', typing: true },
    { room: 'lobby', userId: 'alice', typing: false }
  ], 'the repeated starts were throttled')
  await carol.expectFrame('typing')

  // Past the throttle window, a start that is still going is broadcast again.
  await acked(alice, 'typing_started', { room: 'lobby' })
  await bob.expectFrame('typing')
  await delay(350)
  await acked(alice, 'typing_started', { room: 'lobby' })
  t.same(typingOf(await bob.expectFrame('typing')).typing, true, 're-broadcast after the throttle window')
  t.equal(typingFrames(bob).length, 4)

  t.equal(typingFrames(alice).length, 0, 'the sender never gets its own typing')
  const stats = router.getStats().builtins
  t.equal(stats['typing.broadcast'], 4)
  t.equal(stats['typing.throttled'], 2)

  const refused = await acked(dave, 'typing_started', { room: 'lobby' })
  t.same(refused, { type: 'error', code: 'FORBIDDEN' }, 'only members may type in a room')
  const refusedStop = await acked(dave, 'typing_stopped', { room: 'lobby' })
  t.same(refusedStop, { type: 'error', code: 'FORBIDDEN' })
  const stopWithoutStart = await acked(bob, 'typing_stopped', { room: 'lobby' })
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
  const alice = await connectAs(server, 'alice')
  const bob = await connectAs(server, 'bob')
  await joined(alice, 'r')
  await joined(bob, 'r')

  t.equal(tracker?.sweeping, false, 'no interval while nobody types')
  const startedAt = Date.now()
  await acked(alice, 'typing_started', { room: 'r' })
  t.equal(typingOf(await bob.expectFrame('typing')).typing, true)
  t.equal(tracker?.sweeping, true)
  const expired = await bob.expectFrame('typing', { timeoutMs: 2000 })
  const elapsed = Date.now() - startedAt
  t.same(typingOf(expired), { room: 'r', userId: 'alice', typing: false })
  t.ok(elapsed >= 200, `not before typingTimeoutMs (${elapsed} ms)`)
  t.equal(router.getStats().builtins['typing.expired'], 1)
  t.equal(tracker?.size, 0)
  t.equal(tracker?.connections, 0)
  t.equal(tracker?.sweeping, false, 'the interval stopped with the last indicator')

  // A repeated start pushes the expiry back.
  await acked(alice, 'typing_started', { room: 'r' })
  await bob.expectFrame('typing')
  const renewedAt = Date.now()
  await delay(100)
  await acked(alice, 'typing_started', { room: 'r' })
  await bob.expectFrame('typing')
  await delay(100)
  t.equal(typingFrames(bob).filter((p) => !p.typing).length, 1, 'not expired 200 ms after the first of two starts')
  const renewedExpiry = await bob.expectFrame((f) => f.type === 'typing' && typingOf(f).typing === false, { timeoutMs: 2000 })
  t.ok(Date.now() - renewedAt >= 300, 'expired counting from the last start')
  t.equal(typingOf(renewedExpiry).userId, 'alice')
})

t.test('a connection that closes stops its typing everywhere', async (t) => {
  const server = await startServer({ typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const tracker = typingTrackerOf(router)
  const alice = await connectAs(server, 'alice')
  const bob = await connectAs(server, 'bob')
  for (const room of ['a', 'b']) {
    await joined(alice, room)
    await joined(bob, room)
    await acked(alice, 'typing_started', { room })
  }
  await bob.expectFrame('typing')
  await bob.expectFrame('typing')
  t.equal(tracker?.size, 2)
  const closing = alice.close()
  const stops = [await bob.expectFrame('typing'), await bob.expectFrame('typing')].map(typingOf)
  await closing
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
  const tab1 = await connectAs(server, 'alice')
  const tab2 = await connectAs(server, 'alice')
  const bob = await connectAs(server, 'bob')
  for (const c of [tab1, tab2, bob]) await joined(c, 'r')
  await acked(tab1, 'typing_started', { room: 'r' })
  await bob.expectFrame('typing')
  await tab2.expectFrame('typing')
  await acked(tab2, 'typing_started', { room: 'r' })
  t.equal(server.app.wsRouter.getStats().builtins['typing.throttled'], 1, 'same user, same room: throttled')
  await tab1.close()
  await delay(50)
  t.equal(typingFrames(bob).length, 1, 'the tab that took over is still typing')
  t.equal(tracker?.size, 1)
  const closing = tab2.close()
  t.same(typingOf(await bob.expectFrame((f) => f.type === 'typing' && !typingOf(f).typing)), { room: 'r', userId: 'alice', typing: false })
  await closing
  await waitFor(() => tracker?.connections === 0)
})
