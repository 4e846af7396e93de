import type { MessageId } from './envelope.js'
import type { FanoutOptions, FanoutResult } from './fanout.js'
import type { RouterConfig } from './options.js'
import type { MessageHandler, PayloadOf, RouteOptions } from './registry.js'
import type { WsSchema } from './schema.js'
import type { SendOptions, SendResult } from './send.js'
import type { Tracing } from './tracing.js'

export type { FanoutOptions, FanoutResult }

/** A built-in's send options. */
export interface BuiltinSendOptions extends SendOptions {
  /** Resume (issue 12): number this frame although it carries a request id (agent events are must-deliver events of the session). */
  readonly numbered?: boolean
}

/**
 * What a built-in (lib/handlers/*.ts) is given by the router: the few
 * functions it needs, as arguments, so it imports neither the facade nor
 * the engine, nor another built-in. The router builds one per instance.
 */
export interface BuiltinHost {
  readonly config: RouterConfig
  /** Register an ordinary route (an app may replace it with `override: true`). */
  on: (<PayloadSchema extends WsSchema | undefined = undefined, ReplySchema extends WsSchema | undefined = undefined>(
    type: string,
    options: RouteOptions<PayloadSchema, ReplySchema>,
    handler: MessageHandler<PayloadOf<PayloadSchema>, PayloadOf<ReplySchema>>
  ) => unknown)
  /** Another name for a registered type (legacy aliases). */
  alias: (alias: string, target: string) => void
  join: (connectionId: string, room: string) => boolean
  leave: (connectionId: string, room: string) => boolean
  isMember: (connectionId: string, room: string) => boolean
  /** Rooms a connection is in, counted. */
  roomCount: (connectionId: string) => number
  sendToRoom: (room: string, type: string, payload?: unknown, options?: FanoutOptions) => Promise<FanoutResult>
  /**
   * Send a frame to one connection, with the id of the request it answers
   * (an agent run's events carry the `start_agent` frame's id). Counted and
   * a failure logged once, as every send; `NOT_OPEN` once the connection is gone.
   */
  sendFrame: (connectionId: string, type: string, requestId: MessageId | undefined, payload: unknown, options?: BuiltinSendOptions) => Promise<SendResult>
  /** Whether the connection is still open. */
  isOpen: (connectionId: string) => boolean
  /** Whether frames for the connection can still arrive: open, or (resume, issue 12) its session is held, parked or resumed. */
  canReceive: (connectionId: string) => boolean
  /** Close a connection with 1000, at its own request (no counter, no log line). */
  closeNormally: (connectionId: string, reason: string) => void
  countBuiltin: (name: string) => void
  countClientError: (code: string) => void
  /** Called once per closed connection, after it left every room. */
  onConnectionClosed: (listener: (connectionId: string) => void) => void
  /** Spans (an agent run's) when the `tracing` option is set; null otherwise. */
  readonly tracing: Tracing | null
  /** Each stateful built-in's state, by name (`typing`, `agent`); tests read it through test/helpers/internals.ts. */
  readonly state: Map<string, unknown>
}
