import { randomBytes } from 'node:crypto'
import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'
import { closeConnection } from './closing.js'
import type { MessageId } from './envelope.js'
import { CloseCode } from './errors.js'
import { frameFailed, runBlame, type Blame } from './error-run.js'
import { ignoreOutcome, sendFrameThen } from './outbound.js'

/**
 * A frame that ended in failure: counted, logged once (with a `ref` tying
 * the error frame to its log line), answered with an `error` frame, and
 * counted at its arrival number toward `maxConsecutiveErrors`.
 */

/** Options of a failure answered with an error frame. */
export interface FrameFailure {
  readonly code: string
  readonly message: string
  readonly id: MessageId | undefined
  readonly messageType?: string | undefined
  readonly details?: unknown
  readonly err?: unknown
  /** Log level of the one log line; `false` when it was logged already or is only counted. */
  readonly level: 'info' | 'warn' | 'error' | false
  /** Counts toward `maxConsecutiveErrors` (default true); flood refusals do not. */
  readonly consecutive?: boolean
  /** Arrival number of the failed frame: its outcome counts at that position. */
  readonly seq: number
  /** Who caused it: decides the close code of a run of failures (1008 or 1011). */
  readonly blame: Blame
}

interface ErrorPayload {
  code: string
  message: string
  details?: unknown
  ref?: string
}

/** Count it, log it once, answer with an error frame. */
export function rejectFrame (core: RouterCore, conn: Connection, failure: FrameFailure): void {
  // The ref ties the frame to its log line, so only a logged failure has one.
  const ref = failure.level === false ? undefined : newRef()
  if (failure.level !== false) {
    conn.log[failure.level]({
      code: failure.code,
      messageType: failure.messageType,
      messageId: failure.id,
      state: conn.state,
      environment: core.config.environment,
      ref,
      details: failure.details,
      err: failure.err
    }, failure.message)
  }
  if (conn.isOpen) {
    const payload: ErrorPayload = { code: failure.code, message: failure.message }
    if (failure.details !== undefined) payload.details = failure.details
    if (ref !== undefined) payload.ref = ref
    sendFrameThen(core, conn, 'error', failure.id, payload, undefined, ignoreOutcome, null)
  }
  if (failure.consecutive !== false) countConsecutiveError(core, conn, failure.seq, failure.blame)
}

/**
 * A run of `maxConsecutiveErrors` failed frames, in arrival order, closes
 * the connection: with 1008 when the client caused every one of them
 * (invalid frames, validation, coded refusals), with 1011 when a handler
 * failure is among them.
 */
function countConsecutiveError (core: RouterCore, conn: Connection, seq: number, blame: Blame): void {
  const run = frameFailed(conn, seq, blame)
  if (run >= core.config.maxConsecutiveErrors && conn.isOpen) {
    const server = runBlame(conn) === 'server'
    closeConnection(core, conn, {
      code: server ? CloseCode.INTERNAL_ERROR : CloseCode.POLICY_VIOLATION,
      reason: server ? 'too many consecutive errors' : 'too many invalid frames',
      level: 'warn',
      message: 'closing websocket after too many consecutive errors',
      fields: { consecutiveErrors: run }
    })
  }
}

/** A short reference that ties an error frame to its log line. */
export function newRef (): string {
  return randomBytes(6).toString('hex')
}
