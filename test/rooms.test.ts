import t from 'tap'
import { startServer } from './helpers/server.js'
import { connect, type TestClient } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

async function joined (client: TestClient, room: string, id: string): Promise<void> {
  client.send({ type: 'join', id, payload: { room } })
  await client.next((f) => f.type === 'joined' && f.id === id)
}

t.test('join, leave, members, fan-out to rooms, users and everyone', async (t) => {
  const server = await startServer({
    authorizeJoin: (ctx, room) => !room.startsWith('private-') || ctx.userId === 'alice'
  })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const alice1 = await connect(`${server.url}?user=alice`)
  const alice2 = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  const carol = await connect(`${server.url}?user=carol`)
  t.teardown(() => { for (const c of [alice1, alice2, bob, carol]) c.ws.terminate() })
  const ids = await Promise.all([alice1, alice2, bob, carol].map(async (c) => (await c.next('connection_established')).payload.connectionId as string))
  const [alice1Id, , bobId] = ids as [string, string, string, string]

  await joined(alice1, 'lobby', 'j1')
  await joined(bob, 'lobby', 'j2')
  await joined(carol, 'lobby', 'j3')
  const reply = alice1.frames.find((f) => f.type === 'joined')
  t.same(reply?.payload, { room: 'lobby' })
  t.same((await router.members('lobby')).map((m) => m.userId).sort(), ['alice', 'bob', 'carol'])

  const toRoom = await router.sendToRoom('lobby', 'news', { n: 1 }, { except: alice1Id })
  t.same({ ok: toRoom.ok, targets: toRoom.targets, delivered: toRoom.delivered, failed: toRoom.failed }, { ok: true, targets: 2, delivered: 2, failed: [] })
  t.equal((await bob.next('news')).payload.n, 1)
  t.equal((await carol.next('news')).payload.n, 1)

  const toUser = await router.sendToUser('alice', 'dm', { hi: true })
  t.equal(toUser.targets, 2, 'every tab of the user')
  await alice1.next('dm')
  await alice2.next('dm')

  const nobody = await router.sendToUser('nobody', 'dm', {})
  t.same({ ok: nobody.ok, reason: nobody.reason, targets: nobody.targets }, { ok: false, reason: 'NO_TARGET', targets: 0 })
  const emptyRoom = await router.sendToRoom('empty', 'x', {})
  t.equal(emptyRoom.reason, 'NO_TARGET')

  const everyone = await router.broadcast('all', {}, { except: bobId })
  t.equal(everyone.targets, 3)

  carol.send({ type: 'join', id: 'p', payload: { room: 'private-1' } })
  const refused = await carol.next('error')
  t.equal(refused.payload.code, 'FORBIDDEN')
  t.equal(refused.id, 'p')
  await joined(alice1, 'private-1', 'p2')

  bob.send({ type: 'leave', id: 'l', payload: { room: 'lobby' } })
  t.same((await bob.next('left')).payload, { room: 'lobby' })
  t.same((await router.members('lobby')).map((m) => m.userId).sort(), ['alice', 'carol'])

  carol.send({ type: 'join', id: 'bad', payload: { room: '' } })
  t.equal((await carol.next((f) => f.type === 'error' && f.id === 'bad')).payload.code, 'VALIDATION_FAILED')

  // closing leaves every room
  alice1.ws.close()
  await alice1.closed
  await waitFor(() => router.connectionCount === 3)
  t.same(router.roomsOf(alice1Id), [])
  t.same((await router.members('private-1')), [], 'an emptied room is gone')
  t.same((await router.members('lobby')).map((m) => m.userId), ['carol'])
  t.equal(router.getStats().rooms, 1)
})

t.test('a member that has gone away is reported as a failed target', async (t) => {
  const server = await startServer()
  t.teardown(server.close)
  const router = server.app.wsRouter
  const a = await connect(`${server.url}?user=a`)
  const b = await connect(`${server.url}?user=b`)
  await joined(a, 'r', '1')
  await joined(b, 'r', '2')
  const bId = (await b.next('connection_established')).payload.connectionId
  // b's socket is gone but the server has not seen the close yet: pause b's side, then kill the server-side socket.
  const conns = (router as unknown as { connections: Map<string, { socket: { terminate: () => void, readyState: number } }> }).connections
  const serverSideB = conns.get(bId)
  serverSideB?.socket.terminate()
  const result = await router.sendToRoom('r', 'msg', { text: 'hi' })
  t.equal(result.targets, 2)
  t.equal(result.delivered, 1)
  t.same(result.failed, [{ connectionId: bId, reason: 'NOT_OPEN' }])
  t.equal(result.ok, false)
  a.ws.terminate()
  b.ws.terminate()
})

t.test('maxRoomsPerConnection', async (t) => {
  const server = await startServer({ maxRoomsPerConnection: 2 })
  t.teardown(server.close)
  const c = await connect(server.url)
  t.teardown(() => c.ws.terminate())
  await joined(c, 'a', '1')
  await joined(c, 'b', '2')
  await joined(c, 'a', '3')
  c.send({ type: 'join', id: '4', payload: { room: 'c' } })
  t.equal((await c.next('error')).payload.code, 'ROOM_LIMIT')
})
