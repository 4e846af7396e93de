import type { ResumeStore } from './store.js'
import { withTimeout } from './replay.js'

/**
 * A resume on another instance than the one the client left (issue 12,
 * docs/delivery.md "Several instances"). The order that makes it exactly
 * once:
 *
 * 1. this instance joins the session's rooms (and user) first, and waits
 *    for its subscriptions: from here every event for the session reaches
 *    it, and is held here, unnumbered;
 * 2. the fence: it asks the owner, through the channels of the session's
 *    targets, to confirm that it has dealt with every event published
 *    before (numbered, and its append settled in the store). The owner's
 *    answer carries its last seq of the session at that moment;
 * 3. it claims the session: the old owner's appends are refused from now on.
 *    Every event published before step 1 is in the stream (step 2); every
 *    event published after it reaches this instance;
 * 4. held events whose `mid` the old owner stored too (it appends until the
 *    claim) are dropped; the others are numbered after the claimed
 *    `lastSeq` and stored;
 * 5. the replay reads the stream from the client's `lastSeq`: the old
 *    owner's events, then the held ones, each once, in order.
 *
 * An event can arrive here after step 4 that the old owner stored before
 * the claim (pub/sub reaches two instances at slightly different times):
 * the stream's mids are remembered for a while and such an event is skipped.
 */

export interface HeldEvent {
  readonly text: string
  readonly droppable: boolean
  readonly mid: string | undefined
}

/** How long the stream's mids are remembered after a claim from another instance. */
const REMEMBER_MS = 10_000
/**
 * Stream events read beyond the held ones and those the owner appended after
 * its fence answer: the old owner may have stored events published after the
 * join that have not reached this instance yet (it lags by up to this many).
 */
const MARGIN = 256

export class Arrivals {
  /** Sessions being claimed from another instance → the events that arrived meanwhile. */
  private readonly held = new Map<string, HeldEvent[]>()
  /** Sessions being claimed → the old owner's last seq in its fence answer. */
  private readonly fences = new Map<string, number>()
  /** Sessions claimed from another instance → mids of the stream's newest events at the claim. */
  private readonly stored = new Map<string, Set<string>>()

  /** Start holding the events for a session about to be claimed. */
  open (sessionId: string): void {
    this.held.set(sessionId, [])
    this.fences.delete(sessionId)
  }

  /** The old owner answered the fence with its last seq of the session. */
  fenced (sessionId: string, lastSeq: number): void {
    if (this.held.has(sessionId)) this.fences.set(sessionId, lastSeq)
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
    this.fences.delete(sessionId)
  }

  /**
   * Claimed: the held events the old owner did not store, in arrival order.
   * Holding goes on until this resolves, so nothing is numbered ahead of them.
   */
  async release (sessionId: string, store: ResumeStore, lastSeq: number, timeoutMs: number): Promise<HeldEvent[]> {
    const held = this.held.get(sessionId) ?? []
    const fenceSeq = this.fences.get(sessionId) ?? lastSeq
    const count = held.length + Math.max(0, lastSeq - fenceSeq) + MARGIN
    let mids: Set<string>
    try {
      const newest = await withTimeout(store.read(sessionId, Math.max(0, lastSeq - count), count), timeoutMs)
      mids = new Set(newest.flatMap((event) => event.mid === undefined ? [] : [event.mid]))
    } finally {
      this.held.delete(sessionId)
      this.fences.delete(sessionId)
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
