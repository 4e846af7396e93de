import t from 'tap'
import { ABUSE_WINDOW_MS, countRefusal, takeToken, type RateLimitState } from '../../lib/rate-limit.js'

const limit = { messagesPerSecond: 10, burst: 3 }
const fresh = (now: number): RateLimitState => ({ tokens: limit.burst, refilledAt: now, refusedInWindow: 0, abuseWindowStart: now })

t.test('a burst, then one token per 1/rate seconds (injected clock)', async (t) => {
  const state = fresh(1000)
  t.same([takeToken(state, limit, 1000), takeToken(state, limit, 1000), takeToken(state, limit, 1000), takeToken(state, limit, 1000)], [true, true, true, false])
  t.notOk(takeToken(state, limit, 1050), 'half a token after 50 ms')
  t.ok(takeToken(state, limit, 1100), 'one token after 100 ms')
  t.notOk(takeToken(state, limit, 1100))
  t.ok(takeToken(state, limit, 10_000) && takeToken(state, limit, 10_000) && takeToken(state, limit, 10_000), 'refilled up to the burst')
  t.notOk(takeToken(state, limit, 10_000), 'never above the burst')
})

t.test('abuse: more refusals in one window than the rate allows in it', async (t) => {
  const state = fresh(0)
  const threshold = limit.messagesPerSecond * ABUSE_WINDOW_MS / 1000
  for (let i = 0; i < threshold; i++) t.notOk(countRefusal(state, limit, 5000), `refusal ${i + 1}`)
  t.ok(countRefusal(state, limit, 5000), 'one more is abuse')
  t.notOk(countRefusal(state, limit, 5000 + ABUSE_WINDOW_MS + 1), 'a new window starts counting again')
  t.equal(state.refusedInWindow, 1)
})
