import { compileSchema, type SchemaCheck, type StaticOf, type WsSchema } from './schema.js'
import type { HandlerContext } from './context.js'
import { MAX_TYPE_LENGTH } from './envelope.js'
import { FST_WSR_DUPLICATE_HANDLER, FST_WSR_INVALID_HANDLER } from './errors.js'
import type { RouterStats, TypeCounters } from './stats.js'

/**
 * Message type → compiled handler. Schemas are compiled here, once, at
 * registration; lookup on the per-frame path is one Map read.
 */

/** The payload type a schema (either TypeBox) describes, `unknown` without a schema. */
export type PayloadOf<S> = StaticOf<S>

/**
 * A message handler. It receives the validated payload and a context; what it
 * returns (if not `undefined`) is sent as the reply, with the request's id.
 */
export type MessageHandler<Payload = unknown, Reply = unknown> =
  (payload: Payload, ctx: HandlerContext<Reply>) => Reply | undefined | void | Promise<Reply | undefined | void>

export interface RouteOptions<PayloadSchema extends WsSchema | undefined = undefined, ReplySchema extends WsSchema | undefined = undefined> {
  /** TypeBox schema of the payload; frames that fail it get `VALIDATION_FAILED`. */
  schema?: PayloadSchema
  /** TypeBox schema of the reply payload, checked before sending where the preset says so. */
  replySchema?: ReplySchema
  /** Type of the reply frame. Default: `<type>_result`. */
  replyType?: string
  /** Replace an existing handler (a built-in, for example) instead of failing. */
  override?: boolean
  /** This type's own handler timeout; default: the router's `handlerTimeoutMs`. */
  timeoutMs?: number
  /** Replies of this type may be dropped when the client is slow. Default false. */
  droppable?: boolean
}

export interface Route {
  readonly type: string
  readonly replyType: string
  readonly handler: MessageHandler<unknown, unknown>
  readonly payloadCheck: SchemaCheck | null
  readonly replyCheck: SchemaCheck | null
  readonly timeoutMs: number
  readonly droppable: boolean
  readonly counters: TypeCounters
}

export class HandlerRegistry {
  private readonly routes = new Map<string, Route>()
  /** Alias → registered type, resolved at lookup so a later override is followed. */
  private readonly aliases = new Map<string, string>()

  constructor (private readonly stats: RouterStats, private readonly defaultTimeoutMs: number) {}

  get (type: string): Route | undefined {
    const route = this.routes.get(type)
    if (route !== undefined || this.aliases.size === 0) return route
    const target = this.aliases.get(type)
    return target === undefined ? undefined : this.routes.get(target)
  }

  /** Let frames of type `alias` reach the handler of `target`. */
  alias (alias: string, target: string): void {
    this.aliases.set(alias, target)
  }

  has (type: string): boolean {
    return this.routes.has(type)
  }

  types (): string[] {
    return [...this.routes.keys()]
  }

  add (type: string, options: RouteOptions<WsSchema | undefined, WsSchema | undefined>, handler: MessageHandler<unknown, unknown>): Route {
    if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
      throw new FST_WSR_INVALID_HANDLER(String(type), `type must be a string of 1 to ${MAX_TYPE_LENGTH} characters`)
    }
    if (typeof handler !== 'function') throw new FST_WSR_INVALID_HANDLER(type, 'handler must be a function')
    if (this.routes.has(type) && options.override !== true) throw new FST_WSR_DUPLICATE_HANDLER(type)
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs
    if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new FST_WSR_INVALID_HANDLER(type, 'timeoutMs must be a positive integer')
    }
    const route: Route = Object.freeze({
      type,
      replyType: options.replyType ?? `${type}_result`,
      handler,
      payloadCheck: compile(type, options.schema),
      replyCheck: compile(type, options.replySchema),
      timeoutMs,
      droppable: options.droppable === true,
      counters: this.stats.countersFor(type)
    })
    this.routes.set(type, route)
    return route
  }
}

function compile (type: string, schema: WsSchema | undefined): SchemaCheck | null {
  return schema === undefined ? null : compileSchema(type, schema)
}
