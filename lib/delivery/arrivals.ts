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

/** How long the stream's mids are remembered after a claim from another instance. */
const REMEMBER_MS = 10_000
/** Stream events read beyond the held ones, to find every held event the old owner stored. */
const MARGIN = 64

export class Arrivals {
  /** Sessions being claimed from another instance → the events that arrived meanwhile. */
  private readonly held = new Map<string, HeldEvent[]>()
  /** Sessions claimed from another instance → mids of the stream's newest events at the claim. */
  private readonly stored = new Map<string, Set<string>>()

  /** Start holding the events for a session about to be claimed. */
  open (sessionId: string): void {
    this.held.set(sessionId, [])
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
    this.stored.set(sessionId, mids)
    setTimeout(forget, REMEMBER_MS, this.stored, sessionId, mids).unref()
    return held.filter((event) => event.mid === undefined || !mids.has(event.mid))
  }

  /** An event the old owner stored before the claim, arriving here late: skip it. */
  storedElsewhere (sessionId: string, mid: string | undefined): boolean {
    return mid !== undefined && this.stored.get(sessionId)?.has(mid) === true
  }
}

function forget (stored: Map<string, Set<string>>, sessionId: string, mids: Set<string>): void {
  if (stored.get(sessionId) === mids) stored.delete(sessionId)
}
