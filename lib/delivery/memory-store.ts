import { timingSafeEqual } from 'node:crypto'
import type { ClaimResult, ResumeEvent, ResumeSession, ResumeStore, ResumeStoreCounts, ResumeStoreLimits } from './store.js'

/**
 * The memory resume store, the default: one instance's sessions in Maps. A
 * client can resume only on the instance it left (use the Redis store for
 * several). Bounded per session in events and bytes, and in parked
 * sessions; expired and evicted sessions are released, not left to a timer.
 */

export interface MemoryResumeStoreOptions extends Partial<ResumeStoreLimits> {
  /** The clock, for tests; `Date.now` otherwise. */
  readonly now?: () => number
}

/** A session's record. Its events are a queue: `events[head…]` are held. */
interface Entry {
  readonly sessionId: string
  readonly userId: string
  readonly secretHash: Buffer
  owner: string
  /** null while live (owned by a socket); the expiry time while parked. */
  expiresAt: number | null
  rooms: readonly string[]
  lastSeq: number
  events: ResumeEvent[]
  head: number
  bytes: number
}

/** What is remembered of an expired or evicted session, to answer its claim. */
interface Tombstone {
  readonly userId: string
  readonly secretHash: Buffer
  readonly reason: 'expired' | 'unknown'
}

const DEFAULT_LIMITS: ResumeStoreLimits = Object.freeze({ maxEvents: 1000, maxBytes: 1024 * 1024, maxSessions: 10_000 })

/**
 * @example
 * const store = new MemoryResumeStore({ maxEvents: 500 })
 * await app.register(wsRouter, { resume: { store } })
 */
export class MemoryResumeStore implements ResumeStore {
  private readonly limits: ResumeStoreLimits
  private readonly now: () => number
  private readonly sessions = new Map<string, Entry>()
  /** Parked sessions in park order: the first is the one parked longest ago. */
  private readonly parked = new Set<Entry>()
  /** Ended sessions, in end order, at most `maxSessions` of them. */
  private readonly tombstones = new Map<string, Tombstone>()
  private events = 0
  private evicted = 0
  private trimmed = 0

  constructor (options: MemoryResumeStoreOptions = {}) {
    this.limits = {
      maxEvents: options.maxEvents ?? DEFAULT_LIMITS.maxEvents,
      maxBytes: options.maxBytes ?? DEFAULT_LIMITS.maxBytes,
      maxSessions: options.maxSessions ?? DEFAULT_LIMITS.maxSessions
    }
    this.now = options.now ?? Date.now
  }

  async create (session: ResumeSession, _ttlMs: number): Promise<void> {
    this.forget(session.sessionId)
    this.tombstones.delete(session.sessionId)
    this.sessions.set(session.sessionId, {
      sessionId: session.sessionId,
      userId: session.userId,
      secretHash: Buffer.from(session.secretHash, 'hex'),
      owner: session.owner,
      expiresAt: null,
      rooms: [],
      lastSeq: 0,
      events: [],
      head: 0,
      bytes: 0
    })
  }

  async append (sessionId: string, owner: string, events: readonly ResumeEvent[]): Promise<boolean> {
    const entry = this.owned(sessionId, owner)
    if (entry === null) return false
    for (const event of events) this.push(entry, event)
    return true
  }

  async park (sessionId: string, owner: string, rooms: readonly string[], ttlMs: number): Promise<boolean> {
    const entry = this.owned(sessionId, owner)
    if (entry === null) return false
    entry.rooms = [...rooms]
    entry.expiresAt = this.now() + ttlMs
    // Re-parking moves the session to the end: park order is eviction order.
    this.parked.delete(entry)
    this.parked.add(entry)
    this.sweep()
    while (this.parked.size > this.limits.maxSessions) {
      const oldest = this.parked.values().next().value as Entry
      this.end(oldest, 'unknown')
      this.evicted++
    }
    return true
  }

  async claim (sessionId: string, secretHash: string, userId: string, newOwner: string): Promise<ClaimResult> {
    this.sweep()
    const given = Buffer.from(secretHash, 'hex')
    const entry = this.sessions.get(sessionId)
    const known = entry ?? this.tombstones.get(sessionId)
    if (known === undefined || !sameSecret(known.secretHash, given)) return { ok: false, reason: 'unknown' }
    if (known.userId !== userId) return { ok: false, reason: 'forbidden' }
    if (entry === undefined) return { ok: false, reason: (known as Tombstone).reason }
    if (entry.expiresAt === null) return { ok: false, reason: 'busy' }
    this.parked.delete(entry)
    entry.expiresAt = null
    entry.owner = newOwner
    const first = entry.events[entry.head]
    return { ok: true, rooms: entry.rooms, lastSeq: entry.lastSeq, firstSeq: first === undefined ? entry.lastSeq + 1 : first.seq }
  }

  async read (sessionId: string, afterSeq: number, limit: number): Promise<readonly ResumeEvent[]> {
    const entry = this.live(sessionId)
    if (entry === null || limit <= 0) return []
    const { events, head } = entry
    // Seqs are consecutive from the head: the start is found by arithmetic, not by search.
    const first = events[head]
    if (first === undefined) return []
    const start = head + Math.max(0, afterSeq + 1 - first.seq)
    return events.slice(start, start + limit)
  }

  async drop (sessionId: string, owner: string): Promise<void> {
    const entry = this.sessions.get(sessionId)
    if (entry !== undefined && entry.owner === owner) this.forget(sessionId)
  }

  counts (): ResumeStoreCounts {
    return { sessions: this.sessions.size, parked: this.parked.size, events: this.events, evicted: this.evicted, trimmed: this.trimmed }
  }

  async close (): Promise<void> {
    this.sessions.clear()
    this.parked.clear()
    this.tombstones.clear()
    this.events = 0
  }

  /** The session if it exists, has not expired, and `owner` owns it. */
  private owned (sessionId: string, owner: string): Entry | null {
    const entry = this.live(sessionId)
    return entry !== null && entry.owner === owner ? entry : null
  }

  /** The session unless it is unknown or expired (an expired one is ended here). */
  private live (sessionId: string): Entry | null {
    const entry = this.sessions.get(sessionId)
    if (entry === undefined) return null
    if (entry.expiresAt !== null && entry.expiresAt <= this.now()) {
      this.end(entry, 'expired')
      return null
    }
    return entry
  }

  private push (entry: Entry, event: ResumeEvent): void {
    entry.events.push(event)
    entry.lastSeq = event.seq
    entry.bytes += Buffer.byteLength(event.text)
    this.events++
    const { maxEvents, maxBytes } = this.limits
    // The newest event stays, whatever its size: the bound trims what came before it.
    while (entry.events.length - entry.head > 1 && (entry.events.length - entry.head > maxEvents || entry.bytes > maxBytes)) {
      const oldest = entry.events[entry.head] as ResumeEvent
      entry.bytes -= Buffer.byteLength(oldest.text)
      entry.head++
      this.events--
      this.trimmed++
    }
    // Compact once the trimmed prefix is as long as what is held: amortised O(1) per event.
    if (entry.head > 64 && entry.head * 2 >= entry.events.length) {
      entry.events = entry.events.slice(entry.head)
      entry.head = 0
    }
  }

  /** Parked sessions expire in park order (one window for all): end them from the oldest. */
  private sweep (): void {
    const now = this.now()
    for (const entry of this.parked) {
      if ((entry.expiresAt as number) > now) break
      this.end(entry, 'expired')
    }
  }

  /** A session ended by its window or the parked bound: its claim is answered from a tombstone. */
  private end (entry: Entry, reason: Tombstone['reason']): void {
    this.forget(entry.sessionId)
    this.tombstones.set(entry.sessionId, { userId: entry.userId, secretHash: entry.secretHash, reason })
    if (this.tombstones.size > this.limits.maxSessions) this.tombstones.delete(this.tombstones.keys().next().value as string)
  }

  private forget (sessionId: string): void {
    const entry = this.sessions.get(sessionId)
    if (entry === undefined) return
    this.sessions.delete(sessionId)
    this.parked.delete(entry)
    this.events -= entry.events.length - entry.head
  }
}

/** Constant-time comparison of two hashes (lengths are not secret: both are one hash's size). */
function sameSecret (stored: Buffer, given: Buffer): boolean {
  return stored.length === given.length && timingSafeEqual(stored, given)
}
