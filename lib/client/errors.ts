/**
 * The client's own failure codes. A request rejects with a `ClientError`
 * whose `code` is either a wire code from the server's `error` frame
 * (`VALIDATION_FAILED`, `RATE_LIMITED`, …, see docs/errors.md) or one of
 * these. Kept apart from lib/errors.ts so the browser bundle pulls no
 * server module.
 */
export const ClientErrorCode = Object.freeze({
  /** No answer within `timeoutMs`. */
  TIMEOUT: 'TIMEOUT',
  /** The socket closed while the request was in flight; it may or may not have run. */
  DISCONNECTED: 'DISCONNECTED',
  /** Offline and the queue already holds `queueSize` frames. */
  QUEUE_FULL: 'QUEUE_FULL',
  /** `close()` was called, or the client gave up reconnecting. */
  CLOSED: 'CLOSED',
  /** The caller's `AbortSignal` fired. */
  ABORTED: 'ABORTED',
  /** Client-side validation refused a payload before it was sent, or a reply or event after it arrived. */
  INVALID_PAYLOAD: 'INVALID_PAYLOAD'
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type ClientErrorCode = typeof ClientErrorCode[keyof typeof ClientErrorCode]

/** A failed request: `code` is a wire code or a `ClientErrorCode`. */
export class ClientError extends Error {
  override readonly name = 'ClientError'
  /** A wire code (`VALIDATION_FAILED`, …) or a `ClientErrorCode`. */
  readonly code: string
  /** The error frame's `details`, when the server sent some. */
  readonly details: unknown
  /** The error frame's `ref`: the same `ref` is on the server's log line. */
  readonly ref: string | undefined

  constructor (code: string, message: string, details?: unknown, ref?: string) {
    super(message)
    this.code = code
    this.details = details
    this.ref = ref
  }
}

/** `true` for a `ClientError` (also across bundles, by shape). */
export function isClientError (err: unknown): err is ClientError {
  return err instanceof ClientError || (err instanceof Error && err.name === 'ClientError' && typeof (err as { code?: unknown }).code === 'string')
}
