import type { RedisAdapter } from '../../lib/redis.js'

/**
 * Hold back what an instance's subscriber connection receives (as an
 * instance lagging behind Redis under load would), then let it through in
 * the order it came.
 */
export function stallSubscriber (adapter: RedisAdapter): { release: () => void, held: () => number } {
  const sub = (adapter as unknown as { sub: { emit: (event: string | symbol, ...args: unknown[]) => boolean } }).sub
  const emit = sub.emit
  const queue: unknown[][] = []
  sub.emit = function (event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'message' || event === 'smessage') {
      queue.push([event, ...args])
      return true
    }
    return emit.call(this, event, ...args)
  }
  return {
    release: () => {
      sub.emit = emit
      for (const [event, ...args] of queue) emit.call(sub, event as string, ...args)
    },
    held: () => queue.length
  }
}
