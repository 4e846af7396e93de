/**
 * The client's half of resumable delivery (docs/delivery.md): the session's
 * resume token and the highest `seq` processed, the query that asks the
 * server to resume, duplicates dropped by `seq`, and every lost range of
 * `seq`s reported once. Pure bookkeeping: the client owns the socket.
 */

/** An inclusive range of `seq`s the client will never receive. */
export interface SeqRange {
  readonly from: number
  readonly to: number
}

/** The `resumed` frame's payload: the session came back with its rooms. */
export interface ResumedInfo {
  /** Frames replayed before this one. */
  readonly replayed: number
  /** The session's last `seq` when the replay ended. */
  readonly lastSeq: number
  /** Present when the store no longer held some of the missed frames. */
  readonly gap?: SeqRange
}

/** Why a resume was refused (the server started a fresh session). */
export type ResumeFailedReason = 'expired' | 'unknown' | 'forbidden' | 'busy' | 'unavailable' | 'invalid_seq'

/** The `resume_failed` frame's payload. */
export interface ResumeFailedInfo {
  readonly reason: ResumeFailedReason
  /** The wire error code (`BROKER_UNAVAILABLE` for `unavailable`, …). */
  readonly code: string
  readonly message: string
}

/** What `connection_established` meant for the session. */
export type EstablishedOutcome = 'resumed' | 'fresh'

/** What to do with a numbered frame. */
export type SeqVerdict =
  | { readonly duplicate: true }
  | { readonly duplicate: false, readonly gap: SeqRange | null }

/** The server's default `resumeWindowMs`, used when an offer does not say. */
const DEFAULT_WINDOW_MS = 120_000

const DUPLICATE: SeqVerdict = Object.freeze({ duplicate: true })
const IN_ORDER: SeqVerdict = Object.freeze({ duplicate: false, gap: null })

export class ResumeTracker {
  /** The session the token belongs to (its connection id). */
  private sessionId: string | undefined
  private token: string | undefined
  private lastSeq = 0
  private offeredWindowMs = DEFAULT_WINDOW_MS
  /** The query of the attempt under way asked for a resume. */
  private asked = false

  /** `enabled: false`: never ask to resume (every connection is a fresh session). */
  constructor (private readonly enabled: boolean) {}

  /** The highest `seq` processed in the current session (0 before any). */
  get processedSeq (): number {
    return this.lastSeq
  }

  /** There is a session the next attempt will ask to resume. */
  get resumable (): boolean {
    return this.enabled && this.token !== undefined
  }

  /** How long the server keeps a parked session (from its offer). */
  get windowMs (): number {
    return this.offeredWindowMs
  }

  /**
   * The URL of the next attempt: `url` with `resume=<token>&lastSeq=<n>`
   * when there is a session to resume. The server answers an expired or
   * unknown token with `resume_failed`, so asking after the window costs
   * one frame and tells the app that it missed something.
   */
  url (url: string): string {
    this.asked = this.resumable
    if (!this.asked) return url
    return `${url}${url.includes('?') ? '&' : '?'}resume=${encodeURIComponent(this.token as string)}&lastSeq=${this.lastSeq}`
  }

  /**
   * At `connection_established`: the server resumed the session when it
   * kept its connection id; any other id is a fresh session, whose `seq`s
   * start again at 1 and whose token replaces the old one.
   */
  established (connectionId: string | undefined, offer: unknown): EstablishedOutcome {
    const { token, windowMs } = (offer ?? {}) as { token?: unknown, windowMs?: unknown }
    const resumed = this.asked && connectionId !== undefined && connectionId === this.sessionId
    this.asked = false
    if (!resumed) {
      this.sessionId = connectionId
      this.lastSeq = 0
      this.token = undefined
    }
    // A resumed session may be offered a new token; a server without resume offers none.
    if (typeof token === 'string' && token !== '') this.token = token
    if (typeof windowMs === 'number' && windowMs > 0) this.offeredWindowMs = windowMs
    return resumed ? 'resumed' : 'fresh'
  }

  /** A numbered frame: a duplicate of one processed (a replay overlapping live delivery), or new, maybe after a hole. */
  accept (seq: number): SeqVerdict {
    if (seq <= this.lastSeq) return DUPLICATE
    const from = this.lastSeq + 1
    this.lastSeq = seq
    return seq === from ? IN_ORDER : { duplicate: false, gap: { from, to: seq - 1 } }
  }

  /**
   * At `resumed`: the part of the server's reported gap that no jump in
   * `seq` has reported yet (a gap with nothing replayed after it), or null.
   */
  resumed (info: ResumedInfo | undefined): SeqRange | null {
    const gap = info?.gap
    if (gap === undefined || typeof gap.to !== 'number' || gap.to <= this.lastSeq) return null
    const range = { from: Math.max(gap.from, this.lastSeq + 1), to: gap.to }
    this.lastSeq = gap.to
    return range
  }
}
