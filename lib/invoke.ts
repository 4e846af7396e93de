import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'

/**
 * The one invoke runner, shared by envelope handlers (`HandlerContext`) and
 * JSON-RPC methods (`JsonRpcCall`): the in-flight rule, the call, sync
 * throws, thenable detection, the deadline in the one sweeper, flow control
 * (reading pauses at `maxInFlight` running calls of either kind), the lazy
 * AbortSignal, the observer's duration, and exactly one outcome per call:
 * its value, its error, its timeout or its cancellation (the connection
 * closed). Each protocol turns the outcome into its own answer.
 */

/**
 * One handler or method call. A subclass says what its outcomes mean on
 * the wire; the runner decides which one happens, once.
 */
// Also the call's Deadline and PendingHandler entry, structurally (checked
// where it is handed to the sweeper and the connection), with no
// `implements` clause: those members are internal and stripped from the
// published types.
export abstract class Invocation {
  /** @internal the router's shared state */
  readonly core: RouterCore
  /** @internal */
  readonly conn: Connection
  /** @internal deadline of an async call, ms since epoch; 0 while it is not tracked. */
  deadline = 0
  /** @internal `performance.now()` when the handler was called; 0 when nothing observes. */
  startedAt = 0
  /** @internal true once the call has its outcome (value, error, timeout or cancellation). */
  finished = false
  #controller: AbortController | null = null

  /** @internal */
  constructor (core: RouterCore, conn: Connection) {
    this.core = core
    this.conn = conn
  }

  /** Fires on timeout or when the connection closes. */
  get signal (): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.finished) this.#controller.abort(new Error('already finished'))
    }
    return this.#controller.signal
  }

  /** @internal The call's time limit, ms. */
  abstract get timeoutMs (): number
  /** @internal The name its duration is observed under. */
  abstract get observedName (): string
  /** @internal The handler returned (or its promise fulfilled) in time. */
  abstract succeeded (value: unknown): void
  /** @internal The handler threw or its promise rejected, in time. */
  abstract failed (err: unknown): void
  /** @internal The deadline passed first; the signal has fired. */
  abstract timedOut (message: string): void
  /** @internal The connection closed first; the signal has fired. */
  abstract cancelled (): void

  /**
   * @internal Mark the call answered; false if it already was. Stops
   * tracking its time and resumes reading when under the cap again.
   */
  finish (): boolean {
    if (this.finished) return false
    this.finished = true
    if (this.deadline !== 0) release(this)
    if (this.startedAt !== 0) this.core.observer?.handlerSettled(this.observedName, this.startedAt)
    return true
  }

  /** @internal Fire the AbortSignal, if one was handed out. */
  abort (reason: unknown): void {
    this.#controller?.abort(reason)
  }

  /** @internal Deadline: the sweeper found the call past its time. */
  expire (): void {
    if (!this.finish()) return
    const message = `${this.kindName} did not finish within ${this.timeoutMs} ms`
    this.abort(new Error(message))
    this.timedOut(message)
  }

  /** @internal PendingHandler: the connection closed while the call ran. */
  cancel (reason: unknown): void {
    if (!this.finish()) return
    this.abort(reason)
    this.cancelled()
  }

  /** @internal `Handler` or `Method`, for the timeout message. */
  abstract get kindName (): string
}

/** Whether the connection may start one more call (`maxInFlight` running handlers and calls). */
export function hasRoom (core: RouterCore, conn: Connection): boolean {
  return conn.inFlight < core.config.maxInFlight
}

/**
 * Call `handler(arg, call)` and see it to exactly one outcome. Returns true
 * when the call is still running (a thenable was returned).
 */
export function invoke<Arg, Call extends Invocation> (call: Call, handler: (arg: Arg, call: Call) => unknown, arg: Arg): boolean {
  // The clock is read only when something observes: unobserved calls pay one null check.
  if (call.core.observer !== null) call.startedAt = performance.now()
  let result: unknown
  try {
    result = handler(arg, call)
  } catch (err) {
    if (call.finish()) call.failed(err)
    return false
  }
  if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
    track(call)
    ;(result as PromiseLike<unknown>).then(
      (value) => { if (call.finish()) call.succeeded(value) },
      (err: unknown) => { if (call.finish()) call.failed(err) }
    )
    return !call.finished
  }
  if (call.finish()) call.succeeded(result)
  return false
}

/** An async call: a deadline in the one sweeper, a pending entry on the connection, and flow control. */
function track (call: Invocation): void {
  const core = call.core
  call.deadline = Date.now() + call.timeoutMs
  core.sweeper.add(call)
  const conn = call.conn
  conn.addPending(call)
  conn.holdReadingIfFull(core.config.maxInFlight)
}

function release (call: Invocation): void {
  const core = call.core
  core.sweeper.delete(call)
  const conn = call.conn
  conn.deletePending(call)
  conn.resumeReadingIfRoom(core.config.maxInFlight)
}
