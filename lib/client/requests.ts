import { ClientError, ClientErrorCode } from './errors.js'
import type { Clock, ClientValidator, Frame, RequestOptions } from './types.js'

/**
 * Requests waiting for their answer, by id. Each entry settles exactly
 * once: by its answer, its timeout, its signal, or the connection's fate.
 * Both the client and the test client keep one table.
 */

/** A frame sent with an id, waiting for the frames that answer it. */
export interface PendingEntry {
  readonly id: number
  readonly type: string
  /** The encoded frame, kept to be sent (again) from the queue. */
  readonly text: string
  readonly idempotent: boolean
  /** Answered by numbered frames (an agent run): kept across a resume instead of failing with `DISCONNECTED`. */
  readonly resumable?: boolean
  /** Written to a socket that has not closed since. */
  sent: boolean
  /** Takes a frame with this entry's id; `true` when the entry is finished. */
  accept: (frame: Frame) => boolean
  /** Ends the entry with an error (it was not answered). */
  fail: (error: ClientError) => void
}

export class RequestTable {
  private lastId = 0
  private readonly entries = new Map<number, PendingEntry>()

  nextId (): number {
    this.lastId += 1
    return this.lastId
  }

  get size (): number {
    return this.entries.size
  }

  add (entry: PendingEntry): void {
    this.entries.set(entry.id, entry)
  }

  remove (id: number): void {
    this.entries.delete(id)
  }

  /** Hand an answer to its entry; `false` when no entry has the frame's id. */
  deliver (frame: Frame): boolean {
    if (typeof frame.id !== 'number') return false
    const entry = this.entries.get(frame.id)
    if (entry === undefined) return false
    if (entry.accept(frame)) this.entries.delete(frame.id)
    return true
  }

  /** The entries written to the socket that just closed, oldest first. */
  takeSent (): PendingEntry[] {
    const sent: PendingEntry[] = []
    for (const entry of this.entries.values()) {
      if (entry.sent) sent.push(entry)
    }
    return sent
  }

  /** Fail every entry (the client closed). */
  failAll (code: ClientErrorCode, message: string): void {
    for (const entry of [...this.entries.values()]) entry.fail(new ClientError(code, message))
    this.entries.clear()
  }
}

export interface RequestHooks {
  readonly clock: Clock
  readonly validate: ClientValidator | undefined
  /** Called once when the entry settles, whichever way (to drop it from a queue). */
  readonly settled: (entry: PendingEntry) => void
  /** Called after a reply resolved the request, with its payload. */
  readonly replied?: (type: string, payload: unknown, reply: unknown) => void
}

/**
 * A request entry and its promise: resolves with the answer's payload,
 * rejects with a `ClientError`, never both and never twice. The entry is
 * `null` when the signal had fired already: nothing is to be sent.
 */
export function createRequest (
  table: RequestTable,
  hooks: RequestHooks,
  type: string,
  payload: unknown,
  options: RequestOptions,
  defaultTimeoutMs: number
): { entry: PendingEntry | null, promise: Promise<unknown> } {
  const id = table.nextId()
  const text = JSON.stringify(payload === undefined ? { type, id } : { type, id, payload })
  let resolve!: (value: unknown) => void
  let reject!: (reason: ClientError) => void
  const promise = new Promise<unknown>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  let done = false
  let timer: unknown = null
  const signal = options.signal
  const onAbort = (): void => { finish(new ClientError(ClientErrorCode.ABORTED, `Request "${type}" aborted`)) }

  const finish = (error: ClientError | null, value?: unknown): void => {
    if (done) return
    done = true
    if (timer !== null) hooks.clock.clearTimeout(timer)
    signal?.removeEventListener('abort', onAbort)
    table.remove(id)
    hooks.settled(entry)
    if (error === null) resolve(value)
    else reject(error)
  }

  const entry: PendingEntry = {
    id,
    type,
    text,
    idempotent: options.idempotent === true,
    sent: false,
    accept (frame) {
      if (frame.type === 'error') {
        const body = (frame.payload ?? {}) as { code?: unknown, message?: unknown, details?: unknown, ref?: unknown }
        finish(new ClientError(
          typeof body.code === 'string' ? body.code : 'UNKNOWN_ERROR',
          typeof body.message === 'string' ? body.message : `Request "${type}" failed`,
          body.details,
          typeof body.ref === 'string' ? body.ref : undefined
        ))
        return true
      }
      const problem = hooks.validate?.('reply', type, frame.payload)
      if (problem !== undefined) {
        finish(new ClientError(ClientErrorCode.INVALID_PAYLOAD, `Reply to "${type}" does not match its schema: ${problem}`))
        return true
      }
      finish(null, frame.payload)
      hooks.replied?.(type, payload, frame.payload)
      return true
    },
    fail (error) { finish(error) }
  }

  if (signal?.aborted === true) {
    done = true
    reject(new ClientError(ClientErrorCode.ABORTED, `Request "${type}" aborted`))
    return { entry: null, promise }
  }
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs
  timer = hooks.clock.setTimeout(() => {
    finish(new ClientError(ClientErrorCode.TIMEOUT, `No answer to "${type}" within ${timeoutMs} ms`))
  }, timeoutMs)
  signal?.addEventListener('abort', onAbort, { once: true })
  table.add(entry)
  return { entry, promise }
}

/** Decode one server frame; `null` for anything that is not an object with a string `type`. */
export function decodeFrame (data: unknown): Frame | null {
  if (typeof data !== 'string') return null
  let value: unknown
  try {
    value = JSON.parse(data)
  } catch {
    return null
  }
  if (value === null || typeof value !== 'object' || typeof (value as { type?: unknown }).type !== 'string') return null
  return value as Frame
}

/** The timers of the host. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => { clearTimeout(handle as ReturnType<typeof setTimeout>) }
}
