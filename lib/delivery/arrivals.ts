import type { FanoutTarget } from '../adapter.js'
import type { ResumeStore } from './store.js'
import { withTimeout } from './replay.js'

/**
 * A resume on another instance than the one the client left (issue 12,
 * branch resume-redis; docs/delivery.md "Several instances"). The order that
 * makes it exactly once:
 *
 * 1. this instance joins the session's rooms (and user) first, and waits
 *    for its subscriptions: from here every event for the session reaches
 *    it, and is held here, unnumbered;
 * 2. it claims the session: the old owner's appends are refused from now on,
 *    everything before is in the stream;
 * 3. held events whose `mid` is among the stream's newest events (the old
 *    owner stored them before the claim) are dropped; the others are
 *    numbered after the claimed `lastSeq` and stored;
 * 4. the replay reads the stream from the client's `lastSeq`: the old
 *    owner's events, then the held ones, each once, in order.
 *
 * Step 1 also takes the fan-outs this instance handed over in the last
 * `RECENT_MS` that name the session (its rooms, its user, everyone): an
 * event published just before the join, that the old owner handles only
 * after the claim (its append then refused), is held here all the same.
 * Those the old owner did store are dropped in step 3 like the others.
 *
 * An event can still arrive here after step 3 that the old owner stored
 * before the claim (pub/sub reaches two instances at slightly different
 * times): the stream's mids are remembered for a while and such an event is
 * skipped too.
 */

export interface HeldEvent {
  readonly text: string
  readonly droppable: boolean
  readonly mid: string | undefined
}

/** How long fan-outs handed over here are remembered, and at most how many. */
const RECENT_MS = 2000
const MAX_RECENT = 4096

interface Recent {
  readonly at: number
  readonly target: FanoutTarget
  readonly text: string
  readonly mid: string
}

/** How long the stream's mids are remembered after a claim from another instance. */
const REMEMBER_MS = 10_000
/** Stream events read beyond the held ones, to find every held event the old owner stored. */
const MARGIN = 64

export class Arrivals {
  /** Sessions being claimed from another instance → the events that arrived meanwhile. */
  private readonly held = new Map<string, HeldEvent[]>()
  /** Sessions being claimed → how many of their held events came from the recent fan-outs (the first ones). */
  private readonly fromRecent = new Map<string, number>()
  /** Sessions claimed from another instance → mids of the stream's newest events at the claim. */
  private readonly stored = new Map<string, Set<string>>()

  /** Fan-outs handed over here lately, oldest first (`recentHead` is the first still kept). */
  private readonly recent: Recent[] = []
  private recentHead = 0

  /** A must-deliver fan-out handed over here (from this instance or another). */
  remember (target: FanoutTarget, text: string, mid: string, now = Date.now()): void {
    this.recent.push({ at: now, target, text, mid })
    while (this.recentHead < this.recent.length && ((this.recent[this.recentHead] as Recent).at < now - RECENT_MS || this.recent.length - this.recentHead > MAX_RECENT)) this.recentHead++
    // Compact now and then: the array never holds much more than what is kept.
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent.splice(0, this.recentHead)
      this.recentHead = 0
    }
  }

  /**
   * Start holding the events for a session about to be claimed, beginning
   * with the recent fan-outs that name it (its rooms, its user, everyone).
   */
  open (sessionId: string, userId: string, rooms: readonly string[]): void {
    const cutoff = Date.now() - RECENT_MS
    const held: HeldEvent[] = []
    for (let i = this.recentHead; i < this.recent.length; i++) {
      const { at, target, text, mid } = this.recent[i] as Recent
      if (at < cutoff || target.except === sessionId) continue
      if (target.kind === 'all' || (target.kind === 'user' && target.userId === userId) || (target.kind === 'room' && rooms.includes(target.room))) {
        held.push({ text, droppable: false, mid })
      }
    }
    this.held.set(sessionId, held)
    this.fromRecent.set(sessionId, held.length)
  }

  /** Hold an event for a session being claimed; false when none is. */
  hold (sessionId: string, text: string, droppable: boolean, mid: string | undefined): boolean {
    const held = this.held.get(sessionId)
    if (held === undefined) return false
    held.push({ text, droppable, mid })
    return true
  }

  isHolding (sessionId: string): boolean {
    return this.held.has(sessionId)
  }

  /** Stop holding: the claim failed (the events go nowhere: the session is not this instance's). */
  abandon (sessionId: string): void {
    this.held.delete(sessionId)
    this.fromRecent.delete(sessionId)
  }

  /**
   * Claimed: the held events the old owner did not store, in arrival order.
   * Holding goes on until this resolves, so nothing is numbered ahead of them.
   */
  async release (sessionId: string, store: ResumeStore, lastSeq: number, timeoutMs: number): Promise<HeldEvent[]> {
    const held = this.held.get(sessionId) ?? []
    const count = held.length + MARGIN
    let mids: Set<string>
    try {
      const newest = await withTimeout(store.read(sessionId, Math.max(0, lastSeq - count), count), timeoutMs)
      mids = new Set(newest.flatMap((event) => event.mid === undefined ? [] : [event.mid]))
    } finally {
      this.held.delete(sessionId)
    }
    const recent = this.fromRecent.get(sessionId) ?? 0
    this.fromRecent.delete(sessionId)
    this.stored.set(sessionId, mids)
    setTimeout(forget, REMEMBER_MS, this.stored, sessionId, mids).unref()
    // Of the recent fan-outs, only those after the newest one the old owner stored: it handles them in this
    // order, so they are the ones it had not reached at the claim. Older ones it did not store were not for
    // this session (sent before it joined a room, say). None stored at all: the old owner is further behind
    // than they reach, and all are taken.
    let lastStored = -1
    for (let i = 0; i < recent; i++) {
      const mid = (held[i] as HeldEvent).mid
      if (mid !== undefined && mids.has(mid)) lastStored = i
    }
    const taken = held.slice(lastStored + 1)
    return taken.filter((event) => event.mid === undefined || !mids.has(event.mid))
  }

  /** An event the old owner stored before the claim, arriving here late: skip it. */
  storedElsewhere (sessionId: string, mid: string | undefined): boolean {
    return mid !== undefined && this.stored.get(sessionId)?.has(mid) === true
  }
}

function forget (stored: Map<string, Set<string>>, sessionId: string, mids: Set<string>): void {
  if (stored.get(sessionId) === mids) stored.delete(sessionId)
}
