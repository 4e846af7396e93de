import type { Connection, DrainWaiter } from './connection.js'
import { SendFailure } from './errors.js'

/**
 * Fail-fast sends. A send resolves to a typed outcome and never throws:
 * success only once ws's write callback confirms the bytes left its buffer.
 */

export type SendResult =
  | { readonly ok: true }
  | { readonly ok: false, readonly reason: SendFailure, readonly error?: Error }

export type SendFailed = Extract<SendResult, { ok: false }>

export interface SendLimits {
  readonly maxOutboundBytes: number
  readonly highWaterMarkBytes: number
  readonly maxBufferedBytes: number
  readonly sendTimeoutMs: number
}

export interface SendOptions {
  /** Drop (reason `DROPPED`) instead of waiting when the buffer is over the mark. */
  readonly droppable?: boolean
}

const OPEN = 1

export const SENT: SendResult = Object.freeze({ ok: true })
const NOT_OPEN: SendResult = Object.freeze({ ok: false, reason: SendFailure.NOT_OPEN })
const TOO_LARGE: SendResult = Object.freeze({ ok: false, reason: SendFailure.TOO_LARGE })
const BACKPRESSURE: SendResult = Object.freeze({ ok: false, reason: SendFailure.BACKPRESSURE })
const DROPPED: SendResult = Object.freeze({ ok: false, reason: SendFailure.DROPPED })
const TIMEOUT: SendResult = Object.freeze({ ok: false, reason: SendFailure.TIMEOUT })

export function failure (reason: SendFailure, error?: Error): SendFailed {
  return error === undefined ? { ok: false, reason } : { ok: false, reason, error }
}

/** Byte length of a string, counted only when the cheap bounds cannot decide. */
export function exceedsBytes (text: string, max: number): boolean {
  if (text.length > max) return true
  if (text.length * 3 <= max) return false
  return Buffer.byteLength(text) > max
}

/** Told the outcome of one send; `token` is what the caller handed in (no closure per send). */
export type SendDone<T> = (token: T, result: SendResult) => void

/**
 * Write one serialised frame to a connection.
 * - not OPEN: `NOT_OPEN` at once, never retried;
 * - larger than `maxOutboundBytes`: `TOO_LARGE`;
 * - buffer over the high-water mark: droppable sends are `DROPPED`, the
 *   others wait for drain up to `sendTimeoutMs`, then `BACKPRESSURE`;
 * - a write that would take a non-empty buffer over `maxBufferedBytes`:
 *   `BACKPRESSURE` at once (the caller closes such a connection with 1013);
 * - written but left in the socket's buffer: `TIMEOUT` if ws has not
 *   confirmed the write within `sendTimeoutMs` (the bytes may still arrive).
 */
export function sendText (conn: Connection, text: string, limits: SendLimits, options?: SendOptions): Promise<SendResult> {
  return new Promise<SendResult>((resolve) => {
    sendTextThen(conn, text, limits, options, resolveWith, resolve)
  })
}

function resolveWith (resolve: (result: SendResult) => void, result: SendResult): void {
  resolve(result)
}

/**
 * `sendText` without a promise, for the per-frame path: `done(token, result)`
 * is called once, synchronously for a send refused before the socket,
 * otherwise from ws's write callback (or the drain wait, or the timeout).
 * A reply costs one write callback, not a promise and its microtasks.
 */
export function sendTextThen<T> (conn: Connection, text: string, limits: SendLimits, options: SendOptions | undefined, done: SendDone<T>, token: T): void {
  const socket = conn.socket
  if (socket.readyState !== OPEN) return done(token, NOT_OPEN)
  if (exceedsBytes(text, limits.maxOutboundBytes)) return done(token, TOO_LARGE)
  const buffered = socket.bufferedAmount
  if (buffered >= limits.highWaterMarkBytes) {
    if (options?.droppable === true) return done(token, DROPPED)
    waitForDrain(conn, limits.sendTimeoutMs).then((drained) => {
      if (socket.readyState !== OPEN) return done(token, NOT_OPEN)
      const now = socket.bufferedAmount
      if (!drained || now >= limits.highWaterMarkBytes || overCap(now, text, limits)) return done(token, BACKPRESSURE)
      write(conn, text, limits, done, token)
    })
    return
  }
  if (overCap(buffered, text, limits)) return done(token, BACKPRESSURE)
  write(conn, text, limits, done, token)
}

/** An empty buffer always takes one frame; a non-empty one stays under the hard cap. */
function overCap (buffered: number, text: string, limits: SendLimits): boolean {
  return buffered > 0 && buffered + text.length > limits.maxBufferedBytes
}

function write<T> (conn: Connection, text: string, limits: SendLimits, done: SendDone<T>, token: T): void {
  let timer: NodeJS.Timeout | undefined
  let settled = false
  const socket = conn.socket
  socket.send(text, (err) => {
    if (timer !== undefined) clearTimeout(timer)
    if (conn.drainWaiters !== null && socket.bufferedAmount < limits.highWaterMarkBytes) {
      conn.wakeDrainWaiters(true)
    }
    if (settled) return
    settled = true
    if (err === undefined || err === null) done(token, SENT)
    else done(token, socket.readyState === OPEN ? failure(SendFailure.WRITE_ERROR, err) : NOT_OPEN)
  })
  // The kernel took the whole frame at once in the common case; only a
  // frame left in the socket's buffer needs a deadline.
  if (socket.bufferedAmount > 0) {
    timer = setTimeout(() => {
      if (settled) return
      settled = true
      done(token, TIMEOUT)
    }, limits.sendTimeoutMs)
  }
}

/**
 * What became of one fan-out target at the moment the frame was handed over:
 * - `WRITTEN`: the socket took the whole frame (nothing left in its buffer);
 * - `BUFFERED`: accepted, but waiting in the socket's buffer behind earlier frames;
 * - `DROPPED`: a droppable frame skipped, the buffer being over the high-water mark;
 * - any other `SendFailure`: not accepted (`NOT_OPEN`, `TOO_LARGE`, `BACKPRESSURE`).
 */
export type Handover = 'WRITTEN' | 'BUFFERED' | SendFailure

/**
 * Hand one frame of a fan-out to a connection without waiting on it: a
 * fan-out never waits on its slowest target. A must-deliver frame for a
 * connection whose buffer is already over the high-water mark, or that
 * would pass `maxBufferedBytes`, is `BACKPRESSURE` at once (the caller closes
 * such a connection with 1013), where a single send would wait for drain.
 */
export function writeNow (conn: Connection, text: string, limits: SendLimits, droppable: boolean): Handover {
  const socket = conn.socket
  if (socket.readyState !== OPEN) return SendFailure.NOT_OPEN
  if (exceedsBytes(text, limits.maxOutboundBytes)) return SendFailure.TOO_LARGE
  const buffered = socket.bufferedAmount
  if (buffered >= limits.highWaterMarkBytes) return droppable ? SendFailure.DROPPED : SendFailure.BACKPRESSURE
  if (overCap(buffered, text, limits)) return SendFailure.BACKPRESSURE
  socket.send(text, conn.writeDone)
  return socket.bufferedAmount > 0 ? 'BUFFERED' : 'WRITTEN'
}

function waitForDrain (conn: Connection, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const waiter: DrainWaiter = {
      resolve,
      timer: setTimeout(() => {
        const waiters = conn.drainWaiters
        if (waiters !== null) {
          const index = waiters.indexOf(waiter)
          if (index !== -1) waiters.splice(index, 1)
          if (waiters.length === 0) conn.drainWaiters = null
        }
        resolve(false)
      }, timeoutMs)
    }
    if (conn.drainWaiters === null) conn.drainWaiters = [waiter]
    else conn.drainWaiters.push(waiter)
  })
}
