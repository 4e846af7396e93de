import type { FastifyBaseLogger } from 'fastify'
import type { WsSchema } from './schema.js'
import type { ConnectionStatus } from './connection.js'
import { Engine } from './engine.js'
import { fanout, type FanoutOptions, type FanoutResult } from './fanout.js'
import type { RouterConfig } from './options.js'
import type { MessageHandler, PayloadOf, RouteOptions } from './registry.js'
import type { SendOptions, SendResult } from './send.js'
import type { StatsSnapshot } from './stats.js'
import { kEngine } from './symbols.js'
import type { RoomMember, RouterAdapter } from './adapter.js'
import type { MethodHandler, MethodOptions, ParamsOf } from './jsonrpc.js'

export type { FanoutOptions, FanoutResult } from './fanout.js'

/**
 * One router, as an app sees it (`app.wsRouter`): the documented API
 * (docs/api.md) and nothing else. Each call hands over to the engine
 * (lib/engine.ts) and its parts; two routers share nothing.
 */
export class WsRouter {
  readonly config: RouterConfig
  readonly adapter: RouterAdapter
  /** @internal the engine behind the facade: plugin wiring and tests only */
  readonly [kEngine]: Engine

  constructor (config: RouterConfig, log: FastifyBaseLogger) {
    this.config = config
    this.adapter = config.adapter
    this[kEngine] = new Engine(config, log)
  }

  /**
   * Register a handler for one message type. The payload type is inferred
   * from `schema`; the reply type from `replySchema`.
   *
   * @example
   * app.wsRouter.on('echo', { schema: Type.Object({ text: Type.String() }) }, (payload) => ({ text: payload.text }))
   */
  on<PayloadSchema extends WsSchema | undefined = undefined, ReplySchema extends WsSchema | undefined = undefined>(
    type: string,
    options: RouteOptions<PayloadSchema, ReplySchema>,
    handler: MessageHandler<PayloadOf<PayloadSchema>, PayloadOf<ReplySchema>>
  ): this
  on (type: string, handler: MessageHandler<unknown, unknown>): this
  on (type: string, optionsOrHandler: unknown, maybeHandler?: unknown): this {
    if (typeof optionsOrHandler === 'function') this[kEngine].addRoute(type, {}, optionsOrHandler as MessageHandler<unknown, unknown>)
    else this[kEngine].addRoute(type, (optionsOrHandler ?? {}) as RouteOptions<WsSchema | undefined, WsSchema | undefined>, maybeHandler as MessageHandler<unknown, unknown>)
    return this
  }

  /**
   * Register a JSON-RPC 2.0 method. `params` is a TypeBox schema (a Tuple for
   * positional params, an Object for named ones, a Union for both); params
   * that fail it are answered with -32602. The return value is the result.
   *
   * @example
   * app.wsRouter.method('sum', { params: Type.Array(Type.Number()) }, (params) => params.reduce((a, b) => a + b, 0))
   */
  method<ParamsSchema extends WsSchema | undefined = undefined>(
    name: string,
    options: MethodOptions<ParamsSchema>,
    handler: MethodHandler<ParamsOf<ParamsSchema>>
  ): this
  method (name: string, handler: MethodHandler<unknown>): this
  method (name: string, optionsOrHandler: unknown, maybeHandler?: unknown): this {
    if (typeof optionsOrHandler === 'function') this[kEngine].addMethod(name, {}, optionsOrHandler as MethodHandler)
    else this[kEngine].addMethod(name, (optionsOrHandler ?? {}) as MethodOptions<WsSchema | undefined>, maybeHandler as MethodHandler)
    return this
  }

  /** Whether a handler is registered for this type. */
  hasHandler (type: string): boolean {
    return this[kEngine].registry.has(type)
  }

  /** A copy of the counters. */
  getStats (): StatsSnapshot {
    const engine = this[kEngine]
    const byState: Record<string, number> = { CONNECTING: 0, OPEN: 0, CLOSING: 0, CLOSED: 0 }
    for (const conn of engine.connections.values()) byState[conn.state] = (byState[conn.state] ?? 0) + 1
    const snapshot = engine.stats.snapshot(byState, this.adapter.counts(), this.adapter.status?.() ?? null)
    // Resume (issue 12): additive, present only with resume on
    if (engine.delivery !== null) snapshot.resume = engine.delivery.snapshot()
    return snapshot
  }

  /**
   * The registered message types, read-only: each type with its reply type
   * and its payload and reply schemas (built-ins included), in registration
   * order. For documents generated from the registry, such as AsyncAPI.
   *
   * @example
   * app.wsRouter.routes().map((route) => route.type) // ['ping', 'heartbeat', …, 'echo']
   */
  routes (): Array<{ readonly type: string, readonly replyType: string, readonly schema: WsSchema | undefined, readonly replySchema: WsSchema | undefined }> {
    const registry = this[kEngine].registry
    return registry.types().flatMap((type) => {
      const route = registry.get(type)
      return route === undefined ? [] : [{ type, replyType: route.replyType, schema: route.payloadCheck?.schema, replySchema: route.replyCheck?.schema }]
    })
  }

  /** Number of open connections. */
  get connectionCount (): number {
    return this[kEngine].connections.size
  }

  /** The connection checker for one connection id; undefined when unknown. */
  connectionStatus (connectionId: string): ConnectionStatus | undefined {
    return this[kEngine].connections.get(connectionId)?.status()
  }

  /** Send a frame to one connection by id. */
  sendTo (connectionId: string, type: string, payload?: unknown, options?: SendOptions): Promise<SendResult> {
    return this[kEngine].sendTo(connectionId, type, undefined, payload, options)
  }

  /** Send to every connection of a user (on every instance the adapter reaches). */
  sendToUser (userId: string, type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return fanout(this[kEngine], { kind: 'user', userId, except: options?.except }, type, payload, options)
  }

  /** Send to every member of a room, optionally except one connection. */
  sendToRoom (room: string, type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return fanout(this[kEngine], { kind: 'room', room, except: options?.except }, type, payload, options)
  }

  /** Send to every connection, optionally except one. */
  broadcast (type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return fanout(this[kEngine], { kind: 'all', except: options?.except }, type, payload, options)
  }

  /**
   * Put a connection in a room. Returns false when the connection is unknown
   * or already a member; throws nothing.
   */
  join (connectionId: string, room: string): boolean {
    return this.adapter.join(connectionId, room)
  }

  /** Take a connection out of a room; false when it was not a member. */
  leave (connectionId: string, room: string): boolean {
    return this.adapter.leave(connectionId, room)
  }

  /** Members of a room: connection and user ids. */
  members (room: string): Promise<RoomMember[]> {
    return this.adapter.members(room)
  }

  /** Whether a connection is in a room. */
  isMember (connectionId: string, room: string): boolean {
    return this.adapter.isMember(connectionId, room)
  }

  /** Rooms a connection is in. */
  roomsOf (connectionId: string): readonly string[] {
    return this.adapter.roomsOf(connectionId)
  }

  /** Ids of this instance's open connections of a user. */
  connectionsOf (userId: string): string[] {
    return this.adapter.localTargets({ kind: 'user', userId })
  }

  /** Presence of a user on every instance the adapter sees. */
  presence (userId: string): Promise<{ online: boolean, connections: number }> {
    return this.adapter.presence(userId)
  }

  /** Users online on every instance the adapter sees, with their connection counts. */
  onlineUsers (): Promise<Array<{ userId: string, connections: number }>> {
    return this.adapter.onlineUsers()
  }
}
