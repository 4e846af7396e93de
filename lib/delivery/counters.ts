/**
 * Resume counters (issue 12), in `getStats().resume`. Names are stable:
 * the metrics of issue 13 map them.
 */

export type ResumeFailReason = 'unknown' | 'expired' | 'forbidden' | 'busy' | 'invalid_seq' | 'unavailable'

export interface ResumeStatsSnapshot {
  /** Sessions held by this instance: live, replaying and parked. */
  sessions: number
  /** Sessions parked now (no socket), waiting for their client. */
  parked: number
  /** Sessions resumed (a `resumed` frame sent). */
  resumed: number
  /** Resumes refused, by reason (each answered `resume_failed`). */
  failed: Record<ResumeFailReason, number>
  /** Events replayed to resuming clients. */
  replayedEvents: number
  /** Resumes that reported a gap (`resumed.gap`). */
  gaps: number
  /** Parked sessions dropped for `maxSessions`, the one parked longest ago first. */
  evicted: number
  /** Parked sessions whose window passed without a resume. */
  expired: number
  /** Droppable frames (typing, progress) not kept for a parked or replaying session. */
  droppedWhileAway: number
  /** Store calls that failed or were refused (each logged once per session). */
  storeFailures: number
}

export class ResumeCounters {
  resumed = 0
  readonly failed: Record<ResumeFailReason, number> = { unknown: 0, expired: 0, forbidden: 0, busy: 0, invalid_seq: 0, unavailable: 0 }
  replayedEvents = 0
  gaps = 0
  evicted = 0
  expired = 0
  droppedWhileAway = 0
  storeFailures = 0

  snapshot (sessions: number, parked: number): ResumeStatsSnapshot {
    return {
      sessions,
      parked,
      resumed: this.resumed,
      failed: { ...this.failed },
      replayedEvents: this.replayedEvents,
      gaps: this.gaps,
      evicted: this.evicted,
      expired: this.expired,
      droppedWhileAway: this.droppedWhileAway,
      storeFailures: this.storeFailures
    }
  }
}
