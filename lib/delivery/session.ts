import type { Connection } from '../connection.js'

/**
 * One resumable session as its owning instance holds it: the seq counter,
 * the connection that now receives its events (none while parked), and its
 * place in the parked order. The session id is the connection id.
 */

/**
 * - `live`: a socket holds it; numbered events are stored and written;
 * - `replaying`: a resumed socket is being sent the missed events; new
 *   events are only stored, and the replay reads them in turn;
 * - `parked`: no socket; events are stored until a resume or the window's end.
 */
export type SessionState = 'live' | 'replaying' | 'parked'

export class Session {
  readonly id: string
  readonly userId: string
  /** The last seq assigned; the next event gets `lastSeq + 1`. */
  lastSeq: number
  state: SessionState = 'live'
  /** The connection that receives writes while `live` or `replaying`. */
  conn: Connection | null
  /** The connection close listeners are told about when the session ends (the last to hold it). */
  holder: Connection
  /** While parked: when the window ends, and when agent runs are given up. */
  expiresAt = 0
  graceAt = 0
  /** The close listeners ran for `holder` (at the agent grace, or at the end). */
  released = false
  /** A store call failed for this session (logged once). */
  storeFailed = false
  /** The last store call made for it (calls take effect in order): a fence waits for it. */
  lastStoreCall: Promise<unknown> | null = null
  /** False after its `create` failed: the next store call creates it again first. */
  created = true
  /**
   * resume-redis: the instance that asked this one to fence the session
   * (it is about to claim it); once the store refuses this instance's
   * appends, the session has `moved` there, and the events this instance
   * still produces for it (its agent runs) are forwarded.
   */
  fencedBy: string | null = null
  moved = false
  /** SHA-256 of its token's secret (hex): a resume presenting it may take the session over from a live socket. */
  readonly secretHash: string

  constructor (conn: Connection, lastSeq: number, secretHash: string) {
    this.id = conn.id
    this.userId = conn.userId
    this.conn = conn
    this.holder = conn
    this.lastSeq = lastSeq
    this.secretHash = secretHash
  }
}

/**
 * The frame text with its `seq` as the first field: the fan-out encoded the
 * frame once, and numbering each target's copy is one concatenation.
 */
export function numbered (text: string, seq: number): string {
  return '{"seq":' + seq + ',' + text.slice(1)
}
