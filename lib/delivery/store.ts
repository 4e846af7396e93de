import { timingSafeEqual } from 'node:crypto'

/**
 * The resume store contract (issue 12): where a session's numbered events
 * wait for a client that may come back. One strategy per file (the memory
 * store here, the Redis Streams store beside it); every store passes the one
 * conformance suite, `test/helpers/resume-store-conformance.ts`.
 *
 * A session's life, as the engine drives it:
 *
 *     create ──append*──▶ park ──append*──▶ claim ──append*──▶ park … ──▶ drop
 *       (owner A, live)    (A, parked)       (owner B, live)
 *
 * - The session id is the connection id the client was given, so rooms and
 *   user targets keep naming it while it is parked.
 * - `owner` is the instance that holds the session: only it appends, parks
 *   and drops. After a `claim` by another owner, the old owner's calls are
 *   refused (`false`) or ignored, so a stale instance never writes into a
 *   session someone else resumed.
 * - Sequence numbers are assigned by the owner (one counter per session in
 *   its memory, continued from `claim`'s `lastSeq`), +1 per event, no holes;
 *   the store keeps them as given and never renumbers.
 * - Calls on one session take effect in the order they were made, also
 *   when the engine does not wait for one before making the next (it does
 *   not: `create`, `append` and `park` are fired and their outcomes handled
 *   later).
 * - Every method may reject when the store is unreachable (Redis down); the
 *   engine turns that into `resume_failed { reason: 'unavailable' }` or a
 *   counted send failure, within its own time bound. A store must not hang
 *   forever: its calls settle (resolve or reject) in bounded time.
 */

/** One numbered event, as it was written (or would have been) to the socket. */
export interface ResumeEvent {
  /** Position in the session's stream: a positive integer, +1 per event. */
  readonly seq: number
  /** The encoded frame, `seq` field included: replayed byte for byte. */
  readonly text: string
  /**
   * The fan-out message id (one per fan-out call, shared by all its
   * targets), for cross-instance deduplication; absent for single sends.
   */
  readonly mid?: string
}

/** What a session is created with. */
export interface ResumeSession {
  /** The connection id (also the session's name in the adapter). */
  readonly sessionId: string
  /** The authenticated user: only this user may resume it. */
  readonly userId: string
  /** Hash of the token's secret (hex); the secret itself is never stored. */
  readonly secretHash: string
  /** The instance holding the session (its router's instance id). */
  readonly owner: string
}

/** Why a claim was refused; each is a `resume_failed` reason on the wire. */
export type ClaimRefusal = 'unknown' | 'expired' | 'forbidden' | 'busy'

export type ClaimResult =
  | {
    readonly ok: true
    /** The rooms the session was in when it was parked. */
    readonly rooms: readonly string[]
    /** The highest seq ever appended (0: none); the new owner continues from it. */
    readonly lastSeq: number
    /**
     * The lowest seq still held (`lastSeq + 1` when none is held): events
     * below it were trimmed by the bounds and are a gap for a client that
     * has not seen them.
     */
    readonly firstSeq: number
  }
  | { readonly ok: false, readonly reason: ClaimRefusal }

/** What `peek` tells of a parked session without taking it. */
export interface PeekedSession {
  /** Held by a socket on its owner (a resume takes it over) rather than parked. */
  readonly live: boolean
  /** The rooms the session was in when it was parked (none while live). */
  readonly rooms: readonly string[]
  /** The instance that owns it (appends its events). */
  readonly owner: string
  /** Whether the owner is alive (a claim of a session whose owner stopped answers `expired`). */
  readonly ownerAlive: boolean
}

/** Counts for `getStats().resume.store`; each store reports what it can know. */
export interface ResumeStoreCounts {
  /** Sessions held, live and parked. */
  readonly sessions: number
  /** Sessions parked (no socket), waiting for a resume. */
  readonly parked: number
  /** Events held over all sessions. */
  readonly events: number
  /** Parked sessions dropped by the store's own `maxSessions` bound, oldest first. */
  readonly evicted: number
  /** Events trimmed by the per-session bounds (`maxEvents`, `maxBytes`), oldest first. */
  readonly trimmed: number
}

export interface ResumeStore {
  /**
   * A new live session, owned by `session.owner`, with no events (lastSeq 0).
   * `ttlMs` bounds how long the session may outlive an owner that never
   * parks it (an instance that died); a store that lives inside its
   * instance (memory) may ignore it. Creating an id that exists replaces it.
   */
  create: (session: ResumeSession, ttlMs: number) => Promise<void>

  /**
   * Append events, in the order given (seqs ascending, continuing the
   * session's stream). Resolves `false`, storing nothing, when the session is
   * unknown (dropped, expired, evicted) or `owner` no longer owns it (another
   * owner claimed it): the caller then forgets its copy. A store keeps per
   * session at most its `maxEvents` events and `maxBytes` bytes of `text`,
   * trimming the oldest first; a single event larger than `maxBytes` is kept
   * alone (the newest event is never trimmed by its own append).
   */
  append: (sessionId: string, owner: string, events: readonly ResumeEvent[]) => Promise<boolean>

  /**
   * The session's socket is gone: keep it, with its `rooms`, for `ttlMs`
   * from now; appends by its owner still go in. A store bounded in parked
   * sessions (`maxSessions`) evicts the one parked longest ago first.
   * Resolves `false` when the session is unknown or `owner` does not own it.
   */
  park: (sessionId: string, owner: string, rooms: readonly string[], ttlMs: number) => Promise<boolean>

  /**
   * Atomically take a parked session for `newOwner`: it becomes live again
   * (no expiry), owned by `newOwner`; the old owner's later calls are refused.
   * Checks, in this order, each revealing nothing about a session the caller
   * may not have:
   * - `unknown`: no such session, or `secretHash` differs (a forged token),
   *   compared in constant time; also a session evicted or dropped;
   * - `forbidden`: the secret matches but `userId` is not the session's user;
   * - `expired`: the session's window passed (a store that cannot tell an
   *   expired session from one it never had answers `unknown`);
   * - `busy`: the session is not parked: live on its owner, or claimed by
   *   another connection a moment ago (of two claims at once, one wins).
   */
  claim: (sessionId: string, secretHash: string, userId: string, newOwner: string) => Promise<ClaimResult>

  /**
   * Up to `limit` events with `seq > afterSeq`, ascending. An empty array
   * when there is none (or the session is unknown). The first event's seq is
   * above `afterSeq + 1` when the events in between were trimmed.
   */
  read: (sessionId: string, afterSeq: number, limit: number) => Promise<readonly ResumeEvent[]>

  /**
   * Forget the session and its events, if `owner` still owns it (a stale
   * owner's drop leaves a session claimed by another alone). Idempotent.
   */
  drop: (sessionId: string, owner: string) => Promise<void>

  /**
   * resume-redis: a session that this user, with this secret, may claim or
   * take over, read without taking it (null otherwise, and once a parked
   * session's window passed): live or parked, its rooms (parked only), the
   * instance that owns it, and whether that instance is alive. A store shared by
   * several instances has it: an instance resuming a session another one
   * holds joins its rooms and fences the owner before it claims, so no
   * event falls in between (see lib/delivery/arrivals.ts). A store inside
   * one instance leaves it out.
   */
  peek?: (sessionId: string, secretHash: string, userId: string) => Promise<PeekedSession | null>

  /** Counts for the stats snapshot; synchronous, from what the store holds locally. */
  counts: () => ResumeStoreCounts

  /** Release what the store holds (timers, clients). */
  close: () => Promise<void>
}

/** Per-session and per-store bounds, the part of the `resume` option a store obeys. */
export interface ResumeStoreLimits {
  /** Events kept per session, oldest trimmed first. */
  readonly maxEvents: number
  /** Bytes of frame text kept per session, oldest trimmed first. */
  readonly maxBytes: number
  /** Parked sessions kept, the one parked longest ago evicted first. */
  readonly maxSessions: number
}

/**
 * Whether a presented secret hash is the stored one, in constant time: how
 * every store (and the engine, for a takeover) checks a resume token.
 */
export function sameSecretHash (stored: string, presented: string): boolean {
  const a = Buffer.from(stored)
  const b = Buffer.from(presented)
  return a.length === b.length && timingSafeEqual(a, b)
}
