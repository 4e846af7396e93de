import t from 'tap'
import { startServer } from './helpers/server.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'

// Issue 9: one member that stops reading must not stall the room's senders.
// The fan-out never waits on a member's socket, so `user_message` handlers
// finish and their `message_ack`s go out whatever one member does.

const SENDERS = 50
const MESSAGES_PER_SENDER = 20
/** Messages each sender keeps in flight. */
const WINDOW = 4
/**
 * The documented bound (docs/protocol.md, user messages): an ack never waits
 * on a member, so its delay is the server's own work. 5 s is generous for a
 * loaded 2-core machine (typical: well under 1 s); the engine before issue 9
 * held acks for `sendTimeoutMs` (10 s) behind the slow member.
 */
const ACK_BOUND_MS = 5000

function pauseReading (client: TestClient): void {
  ;(client.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
}

t.test('one non-reading member in a room of 50 busy senders (default options): no OVERLOADED, acks in time, 1013 for the slow member only', async (t) => {
  const server = await startServer({ maxConnectionsPerUser: 0 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const slow = await connect(`${server.url}?user=slow`)
  t.teardown(() => slow.ws.terminate())
  const slowId = (await slow.next('connection_established')).payload.connectionId as string
  const senders: TestClient[] = []
  for (let i = 0; i < SENDERS; i++) senders.push(await connect(`${server.url}?user=s${i}`))
  for (const client of [slow, ...senders]) {
    client.send({ type: 'join', id: 'j', payload: { room: 'busy' } })
    await client.next('joined')
  }
  pauseReading(slow)
  // Fill the stalled member's kernel buffers and then its send buffer past the
  // high-water mark (droppable, so this priming never waits).
  const filler = 'f'.repeat(256 * 1024)
  for (let i = 0; i < 400; i++) {
    const outcome = await router.sendTo(slowId, 'filler', { filler }, { droppable: true })
    if (!outcome.ok) break
  }
  t.equal(router.connectionStatus(slowId)?.writable, false, 'the slow member is over the high-water mark')

  const sentAt = new Map<string, number>()
  const ackDelay: number[] = []
  // Every sender keeps WINDOW messages in flight (pipelined, under maxInFlight
  // and the rate limit), sending the next as an ack comes back: an ack's delay
  // is then the server's work on the frames ahead of it, plus any wait on a member.
  const sendNext = (s: number, m: number): void => {
    const id = `${s}-${m}`
    sentAt.set(id, Date.now())
    senders[s]?.send({ type: 'user_message', id, payload: { room: 'busy', text: `message ${id} `.repeat(8) } })
  }
  senders.forEach((client, s) => {
    let next = WINDOW
    client.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame
      if (frame.type !== 'message_ack') return
      ackDelay.push(Date.now() - (sentAt.get(String(frame.id)) ?? 0))
      if (next < MESSAGES_PER_SENDER) sendNext(s, next++)
    })
  })
  for (let m = 0; m < WINDOW; m++) {
    for (let s = 0; s < SENDERS; s++) sendNext(s, m)
  }
  const total = SENDERS * MESSAGES_PER_SENDER
  await waitFor(() => ackDelay.length === total, 30_000, 'every message_ack')
  // The close frame waits behind what the slow member never read.
  ;(slow.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
  const closed = await Promise.race([slow.closed, new Promise<null>((resolve) => setTimeout(resolve, 10_000, null))])
  t.equal(closed?.code, 1013, 'the slow member is closed with 1013')

  const slowest = Math.max(...ackDelay)
  t.ok(slowest < ACK_BOUND_MS, `slowest ack ${slowest} ms, bound ${ACK_BOUND_MS} ms`)
  t.comment(`acks: slowest ${slowest} ms over ${total} messages`)
  const errors = senders.flatMap((c) => c.frames.filter((f) => f.type === 'error'))
  t.same(errors.map((f) => f.payload.code), [], 'no sender saw an error (no OVERLOADED, no RATE_LIMITED)')
  const stats = router.getStats()
  t.equal(stats.overloaded, 0)
  t.equal(stats.backpressureCloses, 1)
  t.equal(stats.sends.failed.NOT_OPEN ?? 0, 0, 'the closing member left the room at once: no NOT_OPEN to it')

  const acks = senders.flatMap((c) => c.frames.filter((f) => f.type === 'message_ack'))
  t.equal(acks.length, total)
  t.ok(acks.every((a) => a.payload.failed <= 1), 'at most the slow member failed, per message')
  t.equal(acks.filter((a) => a.payload.failed === 1).length, 1, 'the slow member failed once, then it had left the room')
  t.ok(acks.every((a) => a.payload.deliveredTo === a.payload.written + a.payload.buffered), 'deliveredTo = written + buffered')
  t.ok(acks.every((a) => a.payload.dropped === 0), 'a user message is never dropped')
  t.ok(acks.every((a) => a.payload.deliveredTo >= SENDERS - 1), 'every other sender is a target that got the message')
  // Nobody else is affected: every sender has every other sender's messages.
  for (const client of senders) {
    await waitFor(() => client.frames.filter((f) => f.type === 'message').length === total - MESSAGES_PER_SENDER, 10_000, 'every message at every sender')
  }
  t.ok(senders.every((c) => c.ws.readyState === c.ws.OPEN), 'the senders are all still connected')
  t.same(await router.members('busy').then((m) => m.length), SENDERS, 'the slow member left the room when its close began')
  for (const client of senders) client.ws.terminate()
  slow.ws.terminate()
})
