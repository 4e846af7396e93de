/**
 * Reconnect delays: exponential backoff with full jitter. The n-th
 * consecutive failed attempt waits a uniformly random time in
 * `[0, min(maxMs, initialMs × 2^n))`, so clients that lost the same server
 * at the same moment spread their reconnects instead of arriving together.
 */
export interface BackoffOptions {
  /** Upper bound of the first delay. Default 500 ms. */
  readonly initialMs: number
  /** Upper bound of every delay. Default 30 000 ms. */
  readonly maxMs: number
  /** A connection open this long resets the attempt count. Default 10 000 ms. */
  readonly stableAfterMs: number
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 500, maxMs: 30_000, stableAfterMs: 10_000 })

/** The delay before attempt `attempt` (0 for the first reconnect). `random` returns [0, 1). */
export function backoffDelay (options: BackoffOptions, attempt: number, random: () => number): number {
  // 2^attempt overflows to Infinity long after it passed maxMs; min() keeps the bound.
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** attempt)
  return Math.floor(random() * ceiling)
}
