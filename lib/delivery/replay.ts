import type { Connection } from '../connection.js'
import { sendText, writeNow, type SendLimits } from '../send.js'
import type { ResumeStore } from './store.js'
import type { Session } from './session.js'

/**
 * Replay a resumed session's missed events to its new connection: in seq
 * order, each once, at most `ratePerSecond` frames a second, waiting for the
 * socket to drain when its buffer is over the high-water mark. Holes in the
 * stored stream (trimmed by the store's bounds, or lost by a failed append)
 * are collected into one reported gap.
 *
 * The switch to live traffic happens inside the loop, synchronously with the
 * check that nothing is left to read: no event can be appended between the
 * last read and the switch, so none is skipped or sent twice.
 */

export interface ReplayOutcome {
  readonly replayed: number
  /** The lost seq range, inclusive; null when none was lost. */
  readonly gap: { from: number, to: number } | null
}

export interface ReplayPlan {
  readonly store: ResumeStore
  readonly limits: SendLimits
  readonly ratePerSecond: number
  /** A read that takes longer fails the replay (the store is down). */
  readonly readTimeoutMs: number
  /** How often an event counted but not yet readable (an append in flight) is waited for before it is a gap. */
  readonly settleTries: number
  /** Called synchronously once caught up: the session goes live, `resumed` is written. */
  readonly goLive: (outcome: ReplayOutcome) => void
}

/** Why a replay stopped before going live. */
export type ReplayStop = 'closed' | 'store'

const SETTLE_WAIT_MS = 20

export async function replay (session: Session, conn: Connection, afterSeq: number, plan: ReplayPlan): Promise<ReplayOutcome | ReplayStop> {
  const pageSize = Math.max(1, Math.min(500, Math.ceil(plan.ratePerSecond / 10)))
  const startedAt = Date.now()
  let expected = afterSeq + 1
  let replayed = 0
  let gapFrom = 0
  let gapTo = 0
  let settleTries = 0
  const lose = (from: number, to: number): void => {
    if (gapFrom === 0) gapFrom = from
    gapTo = to
  }
  for (;;) {
    if (!conn.isOpen || session.conn !== conn) return 'closed'
    let page
    try {
      page = await withTimeout(plan.store.read(session.id, expected - 1, pageSize), plan.readTimeoutMs)
    } catch {
      return 'store'
    }
    if (!conn.isOpen || session.conn !== conn) return 'closed'
    if (page.length === 0) {
      if (expected > session.lastSeq) {
        const outcome = { replayed, gap: gapFrom === 0 ? null : { from: gapFrom, to: gapTo } }
        plan.goLive(outcome)
        return outcome
      }
      // Counted but not readable yet: an append still in flight, or one the store lost.
      if (++settleTries <= plan.settleTries) {
        await delay(SETTLE_WAIT_MS)
        continue
      }
      lose(expected, session.lastSeq)
      expected = session.lastSeq + 1
      continue
    }
    settleTries = 0
    // The rate bound, before a page is written (so the last page is not followed by a wait):
    // a reconnect storm after a restart must not become a replay storm.
    const due = startedAt + (replayed * 1000) / plan.ratePerSecond - Date.now()
    if (due > 0) {
      await delay(due)
      if (!conn.isOpen || session.conn !== conn) return 'closed'
    }
    for (const event of page) {
      if (event.seq < expected) continue
      if (event.seq > expected) lose(expected, event.seq - 1)
      const written = await write(conn, event.text, plan.limits)
      if (!written) return 'closed'
      expected = event.seq + 1
      replayed++
    }
  }
}

/** Written without waiting while the buffer is under the mark; otherwise after it drains. */
async function write (conn: Connection, text: string, limits: SendLimits): Promise<boolean> {
  if (conn.socket.bufferedAmount < limits.highWaterMarkBytes) {
    const outcome = writeNow(conn, text, limits, false)
    return outcome === 'WRITTEN' || outcome === 'BUFFERED'
  }
  return (await sendText(conn, text, limits)).ok
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** The store's answer, or a rejection after `ms`: a store that hangs must not hang a resume. */
export function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`resume store did not answer within ${ms} ms`)), ms)
    promise.then((value) => {
      clearTimeout(timer)
      resolve(value)
    }, (err: unknown) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}
