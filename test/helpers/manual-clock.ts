import type { Clock } from '../../lib/client/index.js'

/** A clock the test moves by hand: timers fire in time order inside `advance()`. */
export class ManualClock implements Clock {
  private time = 1_000_000
  private seq = 0
  private readonly timers = new Map<number, { at: number, callback: () => void }>()

  now = (): number => this.time

  setTimeout = (callback: () => void, ms: number): unknown => {
    this.seq += 1
    this.timers.set(this.seq, { at: this.time + Math.max(0, ms), callback })
    return this.seq
  }

  clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number)
  }

  /** Timers waiting, e.g. to assert that nothing is left behind. */
  get pending (): number {
    return this.timers.size
  }

  /** Move time forward by `ms`, firing each due timer at its own time. */
  advance (ms: number): void {
    const end = this.time + ms
    for (;;) {
      let nextId = -1
      let nextAt = Infinity
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && timer.at < nextAt) { nextAt = timer.at; nextId = id }
      }
      if (nextId === -1) break
      const timer = this.timers.get(nextId)
      this.timers.delete(nextId)
      this.time = nextAt
      timer?.callback()
    }
    this.time = end
  }
}
