/**
 * Inbound flood control: a token bucket per connection, kept as two numbers
 * on the connection (no allocation, no timer). A bucket holds `burst` tokens
 * and refills at `messagesPerSecond`; each frame takes one.
 *
 * Sustained abuse: a connection that has more frames refused within one
 * abuse window (10 s) than the rate allows in that window (for the default
 * 100 per second: 1 000 refusals in 10 s, a client sending at more than
 * twice its rate for 10 s) is closed with 1008. A single burst is not abuse.
 */

export interface RateLimitConfig {
  readonly messagesPerSecond: number
  readonly burst: number
}

export const ABUSE_WINDOW_MS = 10_000

export interface RateLimitState {
  tokens: number
  refilledAt: number
  refusedInWindow: number
  abuseWindowStart: number
}

/** Take one token; false when the bucket is empty. */
export function takeToken (state: RateLimitState, limit: RateLimitConfig, now: number): boolean {
  const elapsed = now - state.refilledAt
  if (elapsed > 0) {
    state.tokens = Math.min(limit.burst, state.tokens + elapsed * limit.messagesPerSecond / 1000)
    state.refilledAt = now
  }
  if (state.tokens >= 1) {
    state.tokens -= 1
    return true
  }
  return false
}

/** Count a refused frame; true when the connection crossed the abuse threshold. */
export function countRefusal (state: RateLimitState, limit: RateLimitConfig, now: number): boolean {
  if (now - state.abuseWindowStart > ABUSE_WINDOW_MS) {
    state.abuseWindowStart = now
    state.refusedInWindow = 0
  }
  return ++state.refusedInWindow > limit.messagesPerSecond * ABUSE_WINDOW_MS / 1000
}
