/**
 * Handler deadlines without a timer per frame: pending operations sit in one
 * Set, and one interval per router (running only while the Set is not empty)
 * expires those past their deadline. A deadline fires within one tick of
 * its time; the tick is a tenth of the shortest timeout, 5 ms to 1 s.
 */

export interface Deadline {
  deadline: number
  expire: () => void
}

export class DeadlineSweeper {
  private readonly pending = new Set<Deadline>()
  private timer: NodeJS.Timeout | null = null
  private tickMs = 1000

  constructor (timeoutMs: number) {
    this.considerTimeout(timeoutMs)
  }

  /** Make the tick fine enough for this timeout (called when a route is registered). */
  considerTimeout (timeoutMs: number): void {
    this.tickMs = Math.min(this.tickMs, Math.max(5, Math.floor(timeoutMs / 10)))
  }

  get size (): number {
    return this.pending.size
  }

  add (entry: Deadline): void {
    this.pending.add(entry)
    if (this.timer === null) {
      this.timer = setInterval(sweep, this.tickMs, this)
      this.timer.unref()
    }
  }

  delete (entry: Deadline): void {
    this.pending.delete(entry)
    if (this.pending.size === 0) this.stop()
  }

  /** @internal run by the interval */
  sweep (now: number): void {
    for (const entry of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(entry)
        entry.expire()
      }
    }
    if (this.pending.size === 0) this.stop()
  }

  stop (): void {
    if (this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }
}

function sweep (sweeper: DeadlineSweeper): void {
  sweeper.sweep(Date.now())
}
