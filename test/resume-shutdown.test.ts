import t from 'tap'
import { MemoryResumeStore } from '../lib/delivery/memory-store.js'
import type { ClaimResult } from '../lib/delivery/store.js'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

// Issue 12 follow-up: a resume whose claim is still pending when
// `app.close()` starts is not adopted into the closing server. Its client
// is closed with 1001 like every other connection at shutdown, its
// admission released, and the session it claimed parked again, so that it
// can be resumed on another instance or after a restart.

/** What `promise` settled to within `ms`, else `otherwise` (its timer cleared, so it holds nothing open). */
async function within<T> (promise: Promise<T>, ms: number, otherwise: string): Promise<T | string> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<string>((resolve) => { timer = setTimeout(resolve, ms, otherwise) })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

/** The memory store with a claim the test holds until it calls `release`, and a record of its parks. */
function heldStore (): { store: MemoryResumeStore, claimed: Promise<void>, release: () => void, parks: string[] } {
  const store = new MemoryResumeStore()
  const parks: string[] = []
  const claim = store.claim.bind(store)
  const park = store.park.bind(store)
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let onClaim!: () => void
  const claimed = new Promise<void>((resolve) => { onClaim = resolve })
  store.claim = async (...args): Promise<ClaimResult> => {
    onClaim()
    await gate
    return await claim(...args)
  }
  store.park = async (sessionId, ...rest) => {
    const ok = await park(sessionId, ...rest)
    parks.push(`${sessionId} ${ok ? 'parked' : 'refused'}`)
    return ok
  }
  return { store, claimed, release, parks }
}

t.test('a resume pending when app.close() starts: closed with 1001, not adopted, its session parked again, close() resolves', async (t) => {
  const held = heldStore()
  // Default options but the store: the shutdown grace and store timeout of the preset.
  const server = await startServer({ resume: { store: held.store } })
  let closing: Promise<void> = Promise.resolve()
  t.teardown(async () => { held.release(); await closing })
  const router = server.app.wsRouter
  const engine = engineOf(router)

  const first = await connect(`${server.url}?user=alice`)
  const hello = await first.next('connection_established')
  const sessionId = hello.payload.connectionId as string
  const token = hello.payload.resume.token as string
  first.ws.terminate()
  await waitFor(() => (router.getStats().resume?.parked ?? 0) === 1, 5000, 'the session to be parked')
  const parksBefore = held.parks.length

  const client = await connect(`${server.url}?user=alice&resume=${encodeURIComponent(token)}&lastSeq=0`)
  // (On failure, a client left open would hold the server's close.)
  t.teardown(() => client.ws.terminate())
  await held.claimed
  t.equal(engine.admissions.countFor('alice'), 1, 'the resuming socket holds an admission')

  closing = server.close()
  await waitFor(() => engine.closing, 5000, 'shutdown to begin')
  await delay(50)
  held.release()

  const code = await within(client.closed.then((c) => c.code), 8000, 'no close')
  t.equal(code, 1001, 'the client is closed with 1001 (going away)')
  t.same(client.frames.map((f) => f.type), [], 'no connection_established, no resumed')
  const outcome = await within(closing.then(() => 'resolved', (err: Error) => `rejected: ${err.message}`), 15_000, 'hang')
  t.equal(outcome, 'resolved', 'app.close() resolved')
  t.equal(router.connectionCount, 0, 'never adopted')
  t.equal(engine.admissions.countFor('alice'), 0, 'its admission released')
  t.same(held.parks.slice(parksBefore), [`${sessionId} parked`], 'the claimed session was parked again (before the store closed)')
  t.equal(router.getStats().resume?.resumed, 0, 'not counted as resumed')
  const errors = server.logs.filter((line) => line.level >= 50)
  t.same(errors.map((line) => line.msg), [], 'no error logs')
})
