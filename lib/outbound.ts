import { CloseCode, SendFailure } from './errors.js'
import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'
import { closeConnection } from './closing.js'
import { encodeFrame, type MessageId } from './envelope.js'
import { validationDetails, type SchemaCheck } from './schema.js'
import { failure, sendTextThen, writeNow, type SendDone, type SendFailed, type SendOptions, type SendResult } from './send.js'

/**
 * Sends to one connection and their accounting: every send is counted, a
 * failure is logged once, and a must-deliver send that cannot get through
 * closes the connection with 1013. Never throws.
 */

export interface OutboundOptions extends SendOptions {
  /** The route whose reply schema the payload must satisfy (with `validateOutbound`). */
  readonly route?: { readonly replyCheck: SchemaCheck | null }
  /** Resume (issue 12): number this frame although it carries an id (agent events). */
  readonly numbered?: boolean
}

/** Serialise, check and write one frame; count the outcome and log a failure once. */
export function sendFrame (core: RouterCore, conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions): Promise<SendResult> {
  return new Promise<SendResult>((resolve) => {
    sendFrameThen(core, conn, type, id, payload, options, resolveWith, resolve)
  })
}

/**
 * `sendFrame` without a promise, for the per-frame path (replies, acks,
 * error frames): the outcome is counted and a failure logged once, then
 * `done(token, result)` is called, synchronously for a send refused before
 * the socket, otherwise from ws's write callback.
 */
export function sendFrameThen<T> (core: RouterCore, conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options: OutboundOptions | undefined, done: SendDone<T>, token: T): void {
  // Resume (issue 12): a must-deliver frame goes through the session (parked, or resumed on a new socket).
  const delivery = core.delivery
  const session = delivery !== null && delivery.isNumbered(type, id, options?.droppable === true, options?.numbered === true)
    ? delivery.sessionOf(conn.id)
    : undefined
  if (!conn.isOpen && session === undefined) {
    // A droppable frame for a parked session (agent progress) is dropped, not failed: the run goes on.
    if (options?.droppable === true && delivery?.sessionOf(conn.id) !== undefined) {
      const dropped = failure(SendFailure.DROPPED)
      countFailedSend(core, conn, type, dropped)
      return done(token, dropped)
    }
    return done(token, sendFailed(core, conn, type, id, failure(SendFailure.NOT_OPEN)))
  }
  const route = options?.route
  if (route !== undefined && route.replyCheck !== null && core.config.validateOutbound && !route.replyCheck.Check(payload)) {
    const details = validationDetails(route.replyCheck, payload)
    return done(token, sendFailed(core, conn, type, id, failure(SendFailure.INVALID_OUTBOUND), details))
  }
  const encoded = encodeFrame(type, id, payload)
  if (!encoded.ok) return done(token, sendFailed(core, conn, type, id, failure(SendFailure.SERIALIZE, encoded.error)))
  if (session !== undefined && delivery !== null) return done(token, sendOutcome(core, conn, type, id, delivery.sendNumbered(session, encoded.text)))
  sendTextThen(conn, encoded.text, core.config, options, (_: null, result: SendResult) => {
    done(token, sendOutcome(core, conn, type, id, result))
  }, null)
}

/** Count a send's outcome, and log a failure once. */
function sendOutcome (core: RouterCore, conn: Connection, type: string, id: MessageId | undefined, result: SendResult): SendResult {
  if (result.ok) {
    core.stats.sendsOk++
    return result
  }
  if (result.reason === SendFailure.DROPPED) {
    // A droppable frame (typing, progress) dropped for a slow client: counted, not logged.
    countFailedSend(core, conn, type, result)
    return result
  }
  return sendFailed(core, conn, type, id, result)
}

/** A send whose outcome only needs counting (and a failure logging), which sendFrameThen does. */
export function ignoreOutcome (): void {}

function resolveWith (resolve: (result: SendResult) => void, result: SendResult): void {
  resolve(result)
}

/** One encoded frame written without waiting on the socket; its outcome counted, a failure logged once. */
export function writeFrameNow (core: RouterCore, conn: Connection, type: string, id: MessageId | undefined, text: string): void {
  const outcome = writeNow(conn, text, core.config, false)
  if (outcome === 'WRITTEN' || outcome === 'BUFFERED') core.stats.sendsOk++
  else sendFailed(core, conn, type, id, failure(outcome))
}

/** Write a serialised JSON-RPC response (or batch of them); counted, a failure logged once. */
export function sendJsonRpc (core: RouterCore, conn: Connection, text: string, label: string): void {
  if (!conn.isOpen) {
    sendFailed(core, conn, label, undefined, failure(SendFailure.NOT_OPEN))
    return
  }
  sendTextThen(conn, text, core.config, undefined, (_: null, result: SendResult) => {
    if (result.ok) core.stats.sendsOk++
    else sendFailed(core, conn, label, undefined, result)
  }, null)
}

/** A send that failed (or was refused before the socket, a second reply say): counted and logged once. */
export function sendFailed (core: RouterCore, conn: Connection, type: string, id: MessageId | undefined, result: SendFailed, details?: unknown): SendResult {
  countFailedSend(core, conn, type, result)
  conn.log[core.config.sendFailureLogLevel]({
    messageType: type,
    messageId: id,
    reason: result.reason,
    state: conn.state,
    bufferedAmount: conn.socket.bufferedAmount,
    environment: core.config.environment,
    details,
    err: result.error
  }, 'websocket send failed')
  return result
}

/** Count a failed send; a must-deliver frame that met a full buffer closes its connection with 1013. */
export function countFailedSend (core: RouterCore, conn: Connection, type: string, result: SendFailed): void {
  core.stats.countSendFailure(result.reason)
  if (result.reason === SendFailure.DROPPED) core.stats.countDropped(type)
  else if (result.reason === SendFailure.BACKPRESSURE) closeStuck(core, conn)
}

/** A must-deliver send could not get through: the client cannot keep up. */
export function closeStuck (core: RouterCore, conn: Connection): void {
  closeConnection(core, conn, {
    code: CloseCode.TRY_AGAIN_LATER,
    reason: 'client too slow',
    counter: 'backpressureCloses',
    level: 'warn',
    message: 'closing websocket: client does not read fast enough (1013)',
    fields: { bufferedAmount: conn.socket.bufferedAmount, maxBufferedBytes: core.config.maxBufferedBytes }
  })
}
