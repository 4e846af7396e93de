/**
 * Consecutive-error accounting in frame order. Every frame gets a sequence
 * number when it arrives; its outcome counts at that position, whenever it
 * becomes known. A success resets the failures that arrived before it (not
 * the ones after it), so a client that pipelines frames is judged by the
 * order it sent them in, not by the order replies are written or handlers
 * finish.
 *
 * The state is a few fields on the connection; the list of failures is
 * allocated only while a run of failures is under way, and never holds more
 * than `maxConsecutiveErrors` entries (the connection is closed then).
 */

/** Who caused a failed frame: the client (invalid frame, validation) or the server (handler threw or timed out). */
export type Blame = 'client' | 'server'

export interface ErrorRunState {
  /** Sequence number of the last frame that arrived. */
  frameSeq: number
  /** Highest sequence number of a frame that succeeded. */
  lastSuccessSeq: number
  /** Failures at or after `lastSuccessSeq`, in the order they were told; null while none. */
  failures: Array<{ seq: number, blame: Blame }> | null
}

/** Number of the frame that just arrived. */
export function nextFrame (state: ErrorRunState): number {
  return ++state.frameSeq
}

/** A frame succeeded: failures of frames that arrived before it no longer count. */
export function frameSucceeded (state: ErrorRunState, seq: number): void {
  if (seq < state.lastSuccessSeq) return
  state.lastSuccessSeq = seq
  const failures = state.failures
  if (failures === null) return
  const later = failures.filter((failure) => failure.seq > seq)
  state.failures = later.length === 0 ? null : later
}

/**
 * A frame failed. Returns the length of the current run of failures (0 when
 * the failure arrived before a later success, and so breaks no run).
 */
export function frameFailed (state: ErrorRunState, seq: number, blame: Blame): number {
  // A frame that arrived before the last success is not part of the current run.
  // (The same frame may succeed and then fail: its reply could not be sent.)
  if (seq < state.lastSuccessSeq) return 0
  if (state.failures === null) state.failures = [{ seq, blame }]
  else state.failures.push({ seq, blame })
  return state.failures.length
}

/** Who is to blame for the current run: the server when any failure in it was the server's. */
export function runBlame (state: ErrorRunState): Blame {
  return state.failures?.some((failure) => failure.blame === 'server') === true ? 'server' : 'client'
}
