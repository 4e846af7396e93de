import t from 'tap'
import { WsRouterError } from '../lib/index.js'
import { MemoryAdapter, type RemoteOutcome } from '../lib/index.js'
import type { WsRouter } from '../lib/router.js'
import { startServer } from './helpers/server.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { delay } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function joined (client: TestClient, room: string): Promise<string> {
  const established = await client.next('connection_established')
  client.send({ type: 'join', id: `join-${room}`, payload: { room } })
  await client.next((f) => f.type === 'joined' && f.id === `join-${room}`)
  return established.payload.connectionId
}

async function answer (client: TestClient, payload: unknown, id: string): Promise<Frame> {
  client.send({ type: 'user_message', id, payload })
  return await client.next((f) => f.id === id)
}

t.test('a message reaches every other connection in the room, the sender\'s other tabs included', async (t) => {
  const server = await startServer({ maxMessageChars: 20 })
  t.teardown(server.close)
  const alice1 = await connect(`${server.url}?user=alice`)
  const alice2 = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  const carol = await connect(`${server.url}?user=carol`)
  const outsider = await connect(`${server.url}?user=dave`)
  t.teardown(() => { for (const c of [alice1, alice2, bob, carol, outsider]) c.ws.terminate() })
  for (const c of [alice1, alice2, bob, carol]) await joined(c, 'lobby')

  const before = Date.now()
  const ack = await answer(alice1, { room: 'lobby', text: 'hello', clientMessageId: 'local-1' }, 'm1')
  t.equal(ack.type, 'message_ack')
  t.match(ack.payload, { messageId: uuid, room: 'lobby', deliveredTo: 3, failed: 0 })
  t.notOk('remoteInstances' in ack.payload, 'the in-memory adapter reaches no other instance')
  for (const c of [alice2, bob, carol]) {
    const message = await c.next('message')
    t.same(message.payload, { messageId: ack.payload.messageId, room: 'lobby', userId: 'alice', text: 'hello', sentAt: ack.payload.sentAt, clientMessageId: 'local-1' })
    t.equal(message.id, undefined, 'a fan-out frame has no request id')
  }
  t.ok(ack.payload.sentAt >= before && ack.payload.sentAt <= Date.now())
  t.notOk(alice1.frames.some((f) => f.type === 'message'), 'not echoed to the sending connection')
  t.notOk(outsider.frames.some((f) => f.type === 'message'), 'not to a connection outside the room')

  const plain = await answer(bob, { room: 'lobby', text: 'hi' }, 'm2')
  t.equal(plain.payload.deliveredTo, 3)
  t.notOk('clientMessageId' in (await carol.next('message')).payload)

  const forbidden = await answer(outsider, { room: 'lobby', text: 'let me in' }, 'm3')
  t.same({ type: forbidden.type, code: forbidden.payload.code }, { type: 'error', code: 'FORBIDDEN' })
  const tooLong = await answer(alice1, { room: 'lobby', text: 'x'.repeat(21) }, 'm4')
  t.equal(tooLong.payload.code, 'VALIDATION_FAILED')
  const empty = await answer(alice1, { room: 'lobby', text: '' }, 'm5')
  t.equal(empty.payload.code, 'VALIDATION_FAILED')

  await joined(outsider, 'empty-room')
  const alone = await answer(outsider, { room: 'empty-room', text: 'anyone?' }, 'm6')
  t.match(alone.payload, { deliveredTo: 0, failed: 0 }, 'nobody else in the room: nothing delivered, nothing failed')
})

t.test('a member that has gone away is counted as failed in the ack', async (t) => {
  const gone: { router?: WsRouter, connectionId?: string } = {}
  const server = await startServer({
    // Runs just before the fan-out: the member's socket is dead but its close not yet seen.
    onUserMessage: () => { (gone.router === undefined ? undefined : engineOf(gone.router).connection(gone.connectionId as string))?.socket.terminate() }
  })
  t.teardown(server.close)
  const router = server.app.wsRouter
  gone.router = router
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  const carol = await connect(`${server.url}?user=carol`)
  t.teardown(() => { for (const c of [alice, bob, carol]) c.ws.terminate() })
  await joined(alice, 'r')
  await joined(bob, 'r')
  gone.connectionId = await joined(carol, 'r')
  const ack = await answer(alice, { room: 'r', text: 'still there?' }, 'm')
  t.match(ack.payload, { deliveredTo: 1, failed: 1 })
  t.equal((await bob.next('message')).payload.text, 'still there?')
  t.equal(router.getStats().sends.failed.NOT_OPEN, 1)
})

t.test('onUserMessage enriches or refuses a message', async (t) => {
  const server = await startServer({
    onUserMessage: async (ctx, message) => {
      if (message.text.includes('spam')) throw new WsRouterError('MESSAGE_REJECTED', 'Looks like spam')
      if (message.text === 'boom') throw new Error('database down')
      if (message.text === 'as is') return undefined
      await delay(5)
      // An attempt to speak as someone else or elsewhere is ignored.
      return { ...message, messageId: `db-${ctx.userId}-1`, text: message.text.toUpperCase(), persisted: true, userId: 'mallory', room: 'elsewhere' }
    }
  })
  t.teardown(server.close)
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { alice.ws.terminate(); bob.ws.terminate() })
  await joined(alice, 'r')
  await joined(bob, 'r')

  const ack = await answer(alice, { room: 'r', text: 'hello' }, 'e1')
  t.match(ack.payload, { messageId: 'db-alice-1', room: 'r', deliveredTo: 1, failed: 0 })
  t.match((await bob.next('message')).payload, { messageId: 'db-alice-1', room: 'r', userId: 'alice', text: 'HELLO', persisted: true })

  const refused = await answer(alice, { room: 'r', text: 'buy spam now' }, 'e2')
  t.same({ type: refused.type, code: refused.payload.code, message: refused.payload.message }, { type: 'error', code: 'MESSAGE_REJECTED', message: 'Looks like spam' })
  const failed = await answer(alice, { room: 'r', text: 'boom' }, 'e3')
  t.equal(failed.payload.code, 'HANDLER_ERROR')
  const kept = await answer(alice, { room: 'r', text: 'as is' }, 'e4')
  t.match(kept.payload, { messageId: uuid, deliveredTo: 1 })
  t.equal((await bob.next('message')).payload.text, 'as is')
  t.same(bob.frames.filter((f) => f.type === 'message').map((f) => f.payload.text), ['HELLO', 'as is'], 'refused messages reached nobody')
})

t.test('the ack reports what other instances did, apart from this instance\'s count', async (t) => {
  const outcomes: Array<RemoteOutcome | null> = [
    { instances: 2, delivered: 3, failed: [{ connectionId: 'x', reason: 'NOT_OPEN', instanceId: 'i2' }], timedOut: 1, error: 'RECEIPT_TIMEOUT' },
    { instances: 0, error: 'BROKER_UNAVAILABLE' },
    { instances: 1 }
  ]
  class TwoInstanceAdapter extends MemoryAdapter {
    override async publish (): Promise<RemoteOutcome | null> {
      return outcomes.shift() ?? null
    }
  }
  const server = await startServer({ adapter: new TwoInstanceAdapter() })
  t.teardown(server.close)
  const alice = await connect(`${server.url}?user=alice`)
  const bob = await connect(`${server.url}?user=bob`)
  t.teardown(() => { alice.ws.terminate(); bob.ws.terminate() })
  await joined(alice, 'r')
  await joined(bob, 'r')
  const withReceipts = await answer(alice, { room: 'r', text: 'one' }, 'a')
  t.match(withReceipts.payload, { deliveredTo: 1, failed: 0, remoteInstances: 2, remoteDelivered: 3, remoteFailed: 1, remoteTimedOut: 1, remoteError: 'RECEIPT_TIMEOUT' })
  const brokerDown = await answer(alice, { room: 'r', text: 'two' }, 'b')
  t.match(brokerDown.payload, { deliveredTo: 1, failed: 0, remoteInstances: 0, remoteError: 'BROKER_UNAVAILABLE' })
  const noReceipts = await answer(alice, { room: 'r', text: 'three' }, 'c')
  t.match(noReceipts.payload, { deliveredTo: 1, remoteInstances: 1 })
  t.notOk('remoteDelivered' in noReceipts.payload, 'without receipts remote delivery is unknown, not 0')
})
