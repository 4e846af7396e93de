import createError from '@fastify/error'

/**
 * Every error this package can produce, in one place.
 *
 * Two families live here:
 * - registration errors (`FST_WSR_*`), thrown while the plugin is registered
 *   or a handler is declared, so `await app.ready()` rejects with a stable code;
 * - wire error codes, the `payload.code` of an `error` frame, and close codes.
 *
 * `docs/errors.md` documents each of them; a test fails when one is missing.
 */

/** Registration errors: thrown at start-up, never on the per-frame path. */
export const FST_WSR_INVALID_OPTION = createError(
  'FST_WSR_INVALID_OPTION',
  'Invalid fastify-ws-router option %s: %s',
  500,
  TypeError
)

export const FST_WSR_UNKNOWN_OPTION = createError(
  'FST_WSR_UNKNOWN_OPTION',
  'Unknown fastify-ws-router option "%s"',
  500,
  TypeError
)

export const FST_WSR_INVALID_ENVIRONMENT = createError(
  'FST_WSR_INVALID_ENVIRONMENT',
  'Unknown environment "%s": expected development, test, staging or production',
  500,
  TypeError
)

export const FST_WSR_DUPLICATE_HANDLER = createError(
  'FST_WSR_DUPLICATE_HANDLER',
  'A handler for message type "%s" is already registered; pass { override: true } to replace it',
  500
)

export const FST_WSR_INVALID_HANDLER = createError(
  'FST_WSR_INVALID_HANDLER',
  'Invalid handler for message type "%s": %s',
  500,
  TypeError
)

export const FST_WSR_REGISTRY_LOCKED = createError(
  'FST_WSR_REGISTRY_LOCKED',
  'Cannot register message type "%s": the router is already serving connections; register handlers before app.ready()',
  500
)

export const FST_WSR_WEBSOCKET_CONFLICT = createError(
  'FST_WSR_WEBSOCKET_CONFLICT',
  '@fastify/websocket is already attached to this server in another context; register @fastify/websocket once in the root context before registering several routers',
  500
)

export const FST_WSR_ANONYMOUS_IN_PRODUCTION = createError(
  'FST_WSR_ANONYMOUS_IN_PRODUCTION',
  'fastify-ws-router refuses to start in production without an authenticate option; pass authenticate, or allowAnonymous: true to accept anonymous clients on purpose',
  500
)

export const FST_WSR_BROKER_UNAVAILABLE = createError(
  'FST_WSR_BROKER_UNAVAILABLE',
  'The message broker (Redis) could not be reached within %d ms and requireBroker is set',
  500
)

export const FST_WSR_MISSING_PEER = createError(
  'FST_WSR_MISSING_PEER',
  'fastify-ws-router/%s needs the optional peer dependency "%s", which is not installed: run npm install %s',
  500
)

export const FST_WSR_ALREADY_REGISTERED = createError(
  'FST_WSR_ALREADY_REGISTERED',
  'fastify-ws-router is already registered in this context (path %s); to serve a second route, register it in its own child context: app.register(async (scope) => { await scope.register(wsRouter, { path: \'/other\' }) })',
  500
)

export const FST_WSR_NO_ROUTER = createError(
  'FST_WSR_NO_ROUTER',
  'No fastify-ws-router is registered in this context: wsRouter exists only in the context where the plugin was registered and in its children; read it there (scope.wsRouter), or register the plugin in this context',
  500
)

export const FST_WSR_TYPEBOX_MISSING = createError(
  'FST_WSR_TYPEBOX_MISSING',
  'Message type "%s" uses a schema from the `typebox` 1.x package, which could not be loaded: %s. Install it next to fastify-ws-router (npm install typebox)',
  500
)

export const FST_WSR_METRICS_UNAVAILABLE = createError(
  'FST_WSR_METRICS_UNAVAILABLE',
  'The metrics option is set but prom-client (an optional peer dependency) is not installed: npm install prom-client',
  500
)

// Issue 12 (resume-redis): a resume store operation could not reach its store.
/**
 * A resume store (the Redis one) could not be reached, or did not answer
 * within its command timeout. Not a registration error: the store's
 * operations reject with it, and a resume that meets it is answered
 * `resume_failed` with reason `unavailable` and wire code `BROKER_UNAVAILABLE`.
 */
export const FST_WSR_STORE_UNAVAILABLE = createError(
  'FST_WSR_STORE_UNAVAILABLE',
  'The resume store could not be reached: %s',
  503
)

/** Why the remote part of a fan-out (other instances) failed or is incomplete. */
export const RemoteFailure = Object.freeze({
  /** The broker is unreachable: nothing was published, nothing will be replayed. */
  BROKER_UNAVAILABLE: 'BROKER_UNAVAILABLE',
  /** An instance received the frame but sent no receipt within `receiptTimeoutMs`. */
  RECEIPT_TIMEOUT: 'RECEIPT_TIMEOUT',
  /** An instance holding members of the room was not subscribed when the frame was published. */
  SUBSCRIPTION_MISSING: 'SUBSCRIPTION_MISSING'
} as const)

/** The codes a client can see in the `payload.code` of an `error` frame. */
export const WireErrorCode = Object.freeze({
  INVALID_JSON: 'INVALID_JSON',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  FORBIDDEN_KEY: 'FORBIDDEN_KEY',
  MAX_DEPTH_EXCEEDED: 'MAX_DEPTH_EXCEEDED',
  NON_FINITE_NUMBER: 'NON_FINITE_NUMBER',
  BINARY_NOT_SUPPORTED: 'BINARY_NOT_SUPPORTED',
  VALIDATION_FAILED: 'VALIDATION_FAILED',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  HANDLER_ERROR: 'HANDLER_ERROR',
  HANDLER_TIMEOUT: 'HANDLER_TIMEOUT',
  REPLY_FAILED: 'REPLY_FAILED',
  RATE_LIMITED: 'RATE_LIMITED',
  OVERLOADED: 'OVERLOADED',
  FORBIDDEN: 'FORBIDDEN',
  ROOM_LIMIT: 'ROOM_LIMIT',
  NOT_CONFIGURED: 'NOT_CONFIGURED',
  NOT_FOUND: 'NOT_FOUND',
  AGENT_ERROR: 'AGENT_ERROR',
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE'
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type WireErrorCode = typeof WireErrorCode[keyof typeof WireErrorCode]

/**
 * Resume (issue 12): the `payload.code` of a `resume_failed` frame, one per
 * `payload.reason`. The client starts a fresh session in every case.
 */
export const ResumeFailure = Object.freeze({
  /** `unknown`: a malformed or forged token, or a session this server never had or evicted. */
  RESUME_UNKNOWN: 'RESUME_UNKNOWN',
  /** `expired`: the session's window (`resume.windowMs`) passed. */
  RESUME_EXPIRED: 'RESUME_EXPIRED',
  /** `forbidden`: the session belongs to another user. */
  RESUME_FORBIDDEN: 'RESUME_FORBIDDEN',
  /** `busy`: another connection holds or is resuming the session. */
  RESUME_BUSY: 'RESUME_BUSY',
  /** `invalid_seq`: `lastSeq` is not an integer, or is above the last seq the session sent. */
  INVALID_RESUME_SEQ: 'INVALID_RESUME_SEQ',
  /** `unavailable`: the resume store could not be reached in time. */
  BROKER_UNAVAILABLE: 'BROKER_UNAVAILABLE'
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type ResumeFailure = typeof ResumeFailure[keyof typeof ResumeFailure]

/** Why a send did not reach the socket. */
export const SendFailure = Object.freeze({
  NOT_OPEN: 'NOT_OPEN',
  BACKPRESSURE: 'BACKPRESSURE',
  TOO_LARGE: 'TOO_LARGE',
  SERIALIZE: 'SERIALIZE',
  INVALID_OUTBOUND: 'INVALID_OUTBOUND',
  WRITE_ERROR: 'WRITE_ERROR',
  TIMEOUT: 'TIMEOUT',
  DROPPED: 'DROPPED',
  ALREADY_ANSWERED: 'ALREADY_ANSWERED'
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type SendFailure = typeof SendFailure[keyof typeof SendFailure]

/** Close codes the router uses, with the reason each stands for. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  /** Resume (issue 12): a newer connection resumed this connection's session (the client is elsewhere now). */
  SESSION_TAKEN_OVER: 4001
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

/**
 * An error a handler throws on purpose to answer the client with its own code.
 * Its message is always sent (it is written for the client), unlike an
 * unexpected error, whose message only the development and test presets show.
 *
 * @example
 * router.on('join', { schema }, (payload) => {
 *   if (!allowed(payload.room)) throw new WsRouterError('FORBIDDEN', 'Not a member of this room')
 * })
 */
export class WsRouterError extends Error {
  readonly code: string
  readonly details: unknown
  /** Marks the message as written for the client. */
  readonly expose = true

  constructor (code: string, message: string, details?: unknown) {
    super(message)
    this.name = 'WsRouterError'
    this.code = code
    this.details = details
  }
}

export function isWsRouterError (err: unknown): err is WsRouterError {
  return err instanceof WsRouterError
}
