import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WsSchema } from './schema.js'
import type { RawData, WebSocket } from 'ws'
import { Connection, type ConnectionStatus } from './connection.js'
import { HandlerContext, type OutboundOptions } from './context.js'
import { DeadlineSweeper } from './deadlines.js'
import { encodeFrame, encodeWithPayload, PROTOCOL_VERSION, type MessageId } from './envelope.js'
import { CloseCode, FST_WSR_REGISTRY_LOCKED, SendFailure, WireErrorCode, isWsRouterError } from './errors.js'
import type { RouterConfig } from './options.js'
import { HandlerRegistry, validationDetails, type MessageHandler, type PayloadOf, type Route, type RouteOptions } from './registry.js'
import { failure, sendText, writeNow, type SendFailed, type SendOptions, type SendResult } from './send.js'
import { RouterStats, type StatsSnapshot } from './stats.js'
import { handleFrame, type FrameFailure } from './dispatch.js'
import { kBuiltinState, kHeartbeatTick } from './symbols.js'
import { frameFailed, frameSucceeded, runBlame, type Blame } from './error-run.js'
import type { FailedTarget, FanoutTarget, LocalDelivery, RemoteOutcome, RoomMember, RouterAdapter } from './adapter.js'
import { AdmissionCounter } from './admission.js'
import type { Identity } from './identity.js'
import { ABUSE_WINDOW_MS, countRefusal, type RateLimitConfig } from './rate-limit.js'
import type { PipelineObserver } from './observer.js'
import { JsonRpcCode, MethodRegistry, sendJsonRpcFailure, type JsonRpcCall, type MethodHandler, type MethodOptions, type ParamsOf } from './jsonrpc.js'
// resume (issue 12): the delivery engine; the router only calls its hooks.
import { ResumeEngine, type DeliveryHost, type QueuedFrame, type ResumeGreeting } from './delivery/resume.js'

const kConnection = Symbol('fastify-ws-router.connection')
const kRouter = Symbol('fastify-ws-router.router')

interface RoutedSocket extends WebSocket {
  [kConnection]: Connection
  [kRouter]: WsRouter
}

const GENERIC_HANDLER_MESSAGE = 'The server could not handle this message'

interface ErrorPayload {
  code: string
  message: string
  details?: unknown
  ref?: string
}

/** Counters of server-initiated closes, in RouterStats. */
type CloseCounter = 'abuseCloses' | 'backpressureCloses' | 'idleCloses' | 'heartbeatTerminations'

/** A close the server decides: its code, its counter and its one log line, together. */
interface ServerClose {
  /** null: terminate without a close frame. */
  readonly code: number | null
  readonly reason: string
  readonly counter?: CloseCounter
  /** Level of the one log line; false when the caller logged already or nothing is worth a line (shutdown). */
  readonly level: 'info' | 'warn' | false
  readonly message?: string
  readonly fields?: Record<string, unknown>
}

/**
 * One router: its handler registry, its connections, its counters, its one
 * heartbeat timer. Two routers share nothing.
 */
// It serves as the JsonRpcHost, AdapterHost and PipelineHost of its parts
// structurally (checked where it is handed in), with no `implements` clause:
// those members are internal and stripped from the published types.
export class WsRouter {
  readonly config: RouterConfig
  /** @internal */
  readonly stats = new RouterStats()
  /** @internal */
  readonly registry: HandlerRegistry
  /** @internal */
  readonly sweeper: DeadlineSweeper
  /** @internal also enforce `maxPayloadBytes` here: the shared ws server allows larger frames. */
  enforcePayloadLimit = false
  /** @internal JSON-RPC 2.0 methods */
  readonly methods = new MethodRegistry()
  /** @internal handler durations and fan-out sizes go here when metrics are on; null otherwise. */
  observer: PipelineObserver | null = null
  /** @internal admitted clients: open connections plus upgrades under way */
  readonly admissions = new AdmissionCounter()
  readonly adapter: RouterAdapter
  private readonly connections = new Map<string, Connection>()
  /** @internal */
  readonly log: FastifyBaseLogger
  private readonly closeListeners: Array<(conn: Connection) => void> = []
  /** The stateful built-ins' state, by name; reached by tests through the symbol. */
  readonly [kBuiltinState] = new Map<string, unknown>()
  private locked = false
  private heartbeatTimer: NodeJS.Timeout | null = null
  private closing = false
  /** @internal resume (issue 12): numbered events, parked sessions, resumes; null with `resume` off. */
  readonly delivery: ResumeEngine | null
  /** The RATE_LIMITED refusal's message and payload, built once: shedding load must stay cheap. */
  private readonly rateLimitMessage: string
  private readonly rateLimitPayloadJson: string

  constructor (config: RouterConfig, log: FastifyBaseLogger) {
    this.config = config
    this.log = log
    const limit = config.rateLimit
    this.rateLimitMessage = limit === false ? '' : `Rate limit exceeded (${limit.messagesPerSecond} messages per second, burst ${limit.burst})`
    this.rateLimitPayloadJson = JSON.stringify({ code: WireErrorCode.RATE_LIMITED, message: this.rateLimitMessage })
    this.sweeper = new DeadlineSweeper(config.handlerTimeoutMs)
    this.registry = new HandlerRegistry(this.stats, config.handlerTimeoutMs)
    this.adapter = config.adapter
    // resume (issue 12)
    const instanceId = (config.adapter as { instanceId?: unknown }).instanceId
    this.delivery = config.resume === false ? null : new ResumeEngine(config.resume, this.deliveryHost(), config, typeof instanceId === 'string' ? instanceId : undefined)
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
    if (this.locked) throw new FST_WSR_REGISTRY_LOCKED(type)
    const route = typeof optionsOrHandler === 'function'
      ? this.registry.add(type, {}, optionsOrHandler as MessageHandler<unknown, unknown>)
      : this.registry.add(type, (optionsOrHandler ?? {}) as RouteOptions<WsSchema | undefined, WsSchema | undefined>, maybeHandler as MessageHandler<unknown, unknown>)
    this.sweeper.considerTimeout(route.timeoutMs)
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
    if (this.locked) throw new FST_WSR_REGISTRY_LOCKED(`rpc:${name}`)
    const [options, handler] = typeof optionsOrHandler === 'function'
      ? [{}, optionsOrHandler as MethodHandler]
      : [(optionsOrHandler ?? {}) as MethodOptions<WsSchema | undefined>, maybeHandler as MethodHandler]
    const method = this.methods.add(name, options, handler, this.config.handlerTimeoutMs, this.stats.countersFor(`rpc:${name}`))
    this.sweeper.considerTimeout(method.timeoutMs)
    return this
  }

  /** @internal JsonRpcHost */
  get exposeErrorMessages (): boolean {
    return this.config.exposeErrorMessages
  }

  /** @internal JsonRpcHost */
  get maxInFlight (): number {
    return this.config.maxInFlight
  }

  /** @internal JsonRpcHost */
  get environment (): string {
    return this.config.environment
  }

  /** @internal JsonRpcHost: write a JSON-RPC response; counted, a failure logged once. */
  sendJsonRpc (conn: Connection, text: string, label: string): void {
    if (!conn.isOpen) {
      this.sendFailed(conn, label, undefined, failure(SendFailure.NOT_OPEN))
      return
    }
    sendText(conn, text, this.config).then((result) => {
      if (result.ok) this.stats.sendsOk++
      else this.sendFailed(conn, label, undefined, result)
    }, noop)
  }

  /** @internal JsonRpcHost */
  trackCall (call: JsonRpcCall): void {
    call.deadline = Date.now() + call.target.timeoutMs
    this.sweeper.add(call)
    call.conn.addPending(call)
    call.conn.holdReadingIfFull(this.config.maxInFlight)
  }

  /** @internal JsonRpcHost */
  releaseCall (call: JsonRpcCall): void {
    this.sweeper.delete(call)
    call.conn.deletePending(call)
    call.conn.resumeReadingIfRoom(this.config.maxInFlight)
  }

  /** @internal JsonRpcHost: JSON-RPC errors are counted under `jsonrpc:<code>`. */
  countJsonRpcError (code: number): void {
    this.stats.countInvalid(`jsonrpc:${code}`)
  }

  /** @internal */
  newRef (): string {
    return newRef()
  }

  /** Whether a handler is registered for this type. */
  hasHandler (type: string): boolean {
    return this.registry.has(type)
  }

  /** A copy of the counters. */
  getStats (): StatsSnapshot {
    const byState: Record<string, number> = { CONNECTING: 0, OPEN: 0, CLOSING: 0, CLOSED: 0 }
    for (const conn of this.connections.values()) byState[conn.state] = (byState[conn.state] ?? 0) + 1
    const snapshot = this.stats.snapshot(byState, this.adapter.counts(), this.adapter.status?.() ?? null)
    // resume (issue 12): additive, present only with resume on
    if (this.delivery !== null) snapshot.resume = this.delivery.snapshot()
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
    return this.registry.types().flatMap((type) => {
      const route = this.registry.get(type)
      return route === undefined ? [] : [{ type, replyType: route.replyType, schema: route.payloadCheck?.schema, replySchema: route.replyCheck?.schema }]
    })
  }

  /** Number of open connections. */
  get connectionCount (): number {
    return this.connections.size
  }

  /** The connection checker for one connection id; undefined when unknown. */
  connectionStatus (connectionId: string): ConnectionStatus | undefined {
    return this.connections.get(connectionId)?.status()
  }

  /** Send a frame to one connection by id. */
  sendTo (connectionId: string, type: string, payload?: unknown, options?: SendOptions): Promise<SendResult> {
    const conn = this.connections.get(connectionId) ?? this.delivery?.sessionOf(connectionId)?.holder
    if (conn === undefined) {
      this.stats.countSendFailure(SendFailure.NOT_OPEN)
      this.log[this.config.sendFailureLogLevel]({ connectionId, messageType: type, reason: SendFailure.NOT_OPEN, environment: this.config.environment }, 'websocket send failed: no such connection')
      return Promise.resolve(failure(SendFailure.NOT_OPEN))
    }
    return this.sendFrame(conn, type, undefined, payload, options)
  }

  /** Send to every connection of a user (on every instance the adapter reaches). */
  sendToUser (userId: string, type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return this.fanout({ kind: 'user', userId, except: options?.except }, type, payload, options)
  }

  /** Send to every member of a room, optionally except one connection. */
  sendToRoom (room: string, type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return this.fanout({ kind: 'room', room, except: options?.except }, type, payload, options)
  }

  /** Send to every connection, optionally except one. */
  broadcast (type: string, payload?: unknown, options?: FanoutOptions): Promise<FanoutResult> {
    return this.fanout({ kind: 'all', except: options?.except }, type, payload, options)
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

  /**
   * Encode once, write to every local target without waiting on one before
   * the next (a slow client never stalls the others), hand the frame to the
   * adapter for other instances, and report the outcome of every target.
   */
  private async fanout (target: FanoutTarget, type: string, payload: unknown, options: FanoutOptions | undefined): Promise<FanoutResult> {
    const encoded = encodeFrame(type, undefined, payload)
    if (!encoded.ok) {
      this.stats.countSendFailure(SendFailure.SERIALIZE)
      this.log.error({ messageType: type, target, err: encoded.error, environment: this.config.environment }, 'websocket fan-out could not serialise its frame')
      return { ok: false, reason: SendFailure.SERIALIZE, targets: 0, delivered: 0, failed: [], written: 0, buffered: 0, dropped: 0, remote: null }
    }
    const droppable = options?.droppable === true
    // resume-redis: one message id per fan-out, here and on other instances (a session resumed elsewhere skips what it replayed).
    const mid = this.delivery === null || droppable ? undefined : this.delivery.nextMid()
    const local = this.handOver(target, type, encoded.text, droppable, mid)
    const remote = this.adapter.publish(target, encoded.text, mid === undefined ? { type, droppable } : { type, droppable, mid })
      .catch((err: unknown): RemoteOutcome => ({ instances: 0, error: (err as Error).message ?? 'PUBLISH_FAILED' }))
    const { targets, failed } = local
    const remoteOutcome = await remote
    const delivered = targets - failed.length
    const remoteError = remoteOutcome?.error
    const noTarget = targets === 0 && remoteError === undefined && (remoteOutcome === null || remoteOutcome.instances === 0)
    const remoteFailed = (remoteOutcome?.failed?.length ?? 0) + (remoteOutcome?.timedOut ?? 0)
    const result: FanoutResult = {
      ok: !noTarget && failed.length === 0 && remoteError === undefined && remoteFailed === 0,
      targets,
      delivered,
      failed,
      written: local.written ?? 0,
      buffered: local.buffered ?? 0,
      dropped: local.dropped ?? 0,
      remote: remoteOutcome
    }
    if (noTarget) result.reason = 'NO_TARGET'
    const reported = failed.filter((f) => f.reason !== SendFailure.DROPPED)
    if (reported.length > 0 || remoteError !== undefined || remoteFailed > 0) {
      this.log[this.config.sendFailureLogLevel]({
        messageType: type,
        target,
        targets,
        delivered,
        failed: reported.length > 20 ? reported.slice(0, 20) : reported,
        failedCount: reported.length,
        remote: remoteOutcome,
        environment: this.config.environment
      }, 'websocket fan-out had failures')
    }
    return result
  }

  /**
   * @internal AdapterHost: hand an encoded frame to this instance's
   * connections that a target names, without waiting on any of them; each
   * failure is counted (the caller logs the fan-out once). The outcome is
   * each target's state at hand-over: written, buffered, dropped or failed.
   */
  async deliverLocal (target: FanoutTarget, type: string, text: string, droppable: boolean, mid?: string): Promise<LocalDelivery> {
    return this.handOver(target, type, text, droppable, mid)
  }

  private handOver (target: FanoutTarget, type: string, text: string, droppable: boolean, mid?: string): Required<LocalDelivery> {
    // resume-redis: a resume from another instance also holds what was handed over just before it joined.
    if (mid !== undefined && !droppable) this.delivery?.remember(target, text, mid)
    const ids = this.adapter.localTargets(target)
    const failed: FailedTarget[] = []
    let written = 0
    let buffered = 0
    let dropped = 0
    for (let i = 0; i < ids.length; i++) {
      const connectionId = ids[i] as string
      const conn = this.connections.get(connectionId)
      // resume (issue 12): a target with a session is numbered and stored, parked or not (resume-redis: or held while claimed from another instance).
      const routed = this.delivery?.route(connectionId, text, droppable, mid)
      const outcome = routed !== undefined
        ? routed
        : conn === undefined ? SendFailure.NOT_OPEN : writeNow(conn, text, this.config, droppable)
      if (outcome === 'WRITTEN') {
        written++
        continue
      }
      if (outcome === 'BUFFERED') {
        buffered++
        continue
      }
      if (outcome === SendFailure.DROPPED) dropped++
      failed.push({ connectionId, reason: outcome })
      if (conn === undefined) this.stats.countSendFailure(outcome)
      else this.countFailedSend(conn, type, failure(outcome))
    }
    this.stats.sendsOk += written + buffered
    this.observer?.fanout(ids.length)
    return { targets: ids.length, failed, written, buffered, dropped }
  }

  /** Presence of a user on every instance the adapter sees. */
  presence (userId: string): Promise<{ online: boolean, connections: number }> {
    return this.adapter.presence(userId)
  }

  /** Users online on every instance the adapter sees, with their connection counts. */
  onlineUsers (): Promise<Array<{ userId: string, connections: number }>> {
    return this.adapter.onlineUsers()
  }

  private countFailedSend (conn: Connection, type: string, result: SendFailed): void {
    this.stats.countSendFailure(result.reason)
    if (result.reason === SendFailure.DROPPED) this.stats.countDropped(type)
    else if (result.reason === SendFailure.BACKPRESSURE) this.closeStuck(conn)
  }

  /** @internal A must-deliver send could not get through: the client cannot keep up. */
  closeStuck (conn: Connection): void {
    this.closeConnection(conn, {
      code: CloseCode.TRY_AGAIN_LATER,
      reason: 'client too slow',
      counter: 'backpressureCloses',
      level: 'warn',
      message: 'closing websocket: client does not read fast enough (1013)',
      fields: { bufferedAmount: conn.socket.bufferedAmount, maxBufferedBytes: this.config.maxBufferedBytes }
    })
  }

  /**
   * @internal The one place the server closes a connection: the code, its
   * counter and one log line together. The connection leaves its rooms and
   * its user's list at once, not after the close handshake (a peer that does
   * not read may hold CLOSING for ws's 30 s close timeout). False when the
   * connection was no longer open.
   */
  closeConnection (conn: Connection, close: ServerClose): boolean {
    if (!conn.isOpen) return false
    if (close.counter !== undefined) this.stats[close.counter]++
    if (close.level !== false) conn.log[close.level]({ ...close.fields, code: close.code ?? undefined, environment: this.config.environment }, close.message ?? close.reason)
    conn.close(close.code, close.reason)
    this.detach(conn)
    return true
  }

  /** Out of every room and user list (the adapter's), once; the connection object stays until its socket closes. */
  private detach (conn: Connection, peerCode: number | null = null): void {
    if (conn.detached) return
    conn.detached = true
    // resume (issue 12): a parked session keeps its rooms and user entry for its window.
    if (this.delivery !== null && this.delivery.park(conn, peerCode)) return
    this.adapter.removeConnection(conn.id)
  }

  /**
   * @internal Built-ins that keep per-connection state (typing, agent runs)
   * release it here; called once per connection, after it left every room.
   */
  onConnectionClosed (listener: (conn: Connection) => void): void {
    this.closeListeners.push(listener)
  }

  /** @internal Whether frames for this connection can still arrive: open, or (resume) its session is held. */
  canReceive (conn: Connection): boolean {
    return conn.isOpen || this.delivery?.sessionOf(conn.id) !== undefined
  }

  /** @internal the live connection object for an id (built-ins only). */
  connection (connectionId: string): Connection | undefined {
    return this.connections.get(connectionId)
  }

  /** @internal no handler may be added once connections are served. */
  lock (): void {
    this.locked = true
  }

  /** @internal */
  get isClosing (): boolean {
    return this.closing
  }

  /**
   * @internal Adopt a new socket: attach listeners synchronously (a late
   * listener loses frames), then greet the client.
   */
  accept (socket: WebSocket, request: FastifyRequest, identity: Identity): Connection {
    const conn = this.adopt(socket, request, identity, null)
    socket.on('message', onSocketMessage)
    return conn
  }

  /**
   * @internal resume (issue 12): `accept`, unless the client asks to resume
   * (`?resume=`): then it is adopted once its claim is decided (undefined here).
   */
  acceptOrResume (socket: WebSocket, request: FastifyRequest, identity: Identity): Connection | undefined {
    if (this.delivery !== null && this.config.protocol !== 'jsonrpc') {
      const asked = this.delivery.requested(request.query)
      if (asked !== null) {
        this.delivery.resume(socket, request, identity, asked)
        return undefined
      }
    }
    return this.accept(socket, request, identity)
  }

  /**
   * Attach the listeners (but `message`, which the caller attaches) and greet
   * the client: under a new id, or (resume) under the session's.
   */
  private adopt (socket: WebSocket, request: FastifyRequest, identity: Identity, resumed: { id: string, greeting: ResumeGreeting } | null): Connection {
    const id = resumed?.id ?? randomUUID()
    const userId = identity.userId
    // resume: the previous socket of this session may still be closing; its close is settled now.
    const previous = this.connections.get(id)
    if (previous !== undefined) this.removeConnection(previous, 1006)
    const burst = this.config.rateLimit === false ? 0 : this.config.rateLimit.burst
    const conn = new Connection(id, identity, socket, request, request.log, this.config, burst)
    const routed = socket as RoutedSocket
    routed[kConnection] = conn
    routed[kRouter] = this
    socket.on('pong', onSocketPong)
    socket.on('ping', onSocketPing)
    socket.on('close', onSocketClose)
    // The router owns its sockets' errors, whoever registered @fastify/websocket:
    // its default handler logs a stack at error level and terminates (the peer
    // and closedByCode would see 1006 instead of the code ws sent).
    socket.removeAllListeners('error')
    socket.on('error', onSocketError)
    this.connections.set(id, conn)
    this.adapter.addConnection(id, userId)
    this.stats.connectionsOpen++
    this.stats.connectionsTotal++
    if (this.heartbeatTimer === null) this.startHeartbeat()
    // A JSON-RPC route speaks nothing but JSON-RPC, so stock clients work unchanged.
    if (this.config.protocol === 'jsonrpc') return conn
    const greeting: Record<string, unknown> = {
      connectionId: id,
      userId,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      maxPayloadBytes: this.config.maxPayloadBytes
    }
    // resume (issue 12): the session's token, new or the one presented.
    if (this.delivery !== null) greeting.resume = resumed?.greeting ?? this.delivery.open(conn)
    this.sendFrame(conn, 'connection_established', undefined, greeting)
    return conn
  }

  /** resume (issue 12): what the delivery engine may ask of the router, in one place. */
  private deliveryHost (): DeliveryHost {
    return {
      log: this.log,
      environment: this.config.environment,
      roomsOf: (connectionId) => this.adapter.roomsOf(connectionId),
      join: (connectionId, room) => this.adapter.join(connectionId, room),
      adopt: (socket, request, identity, resumed) => this.adopt(socket, request, identity, resumed),
      startReading: (conn, queued) => this.startReading(conn, queued),
      sendControl: (conn, type, payload) => { this.sendFrame(conn, type, undefined, payload) },
      closeStuck: (conn) => this.closeStuck(conn),
      releaseConnection: (conn) => this.releaseConnection(conn),
      forgetConnection: (connectionId) => this.adapter.removeConnection(connectionId),
      abandonAdmission: (userId) => this.admissions.remove(userId),
      // resume-redis: a resume from another instance joins first
      addConnection: (connectionId, userId) => this.adapter.addConnection(connectionId, userId),
      settled: async () => { await this.adapter.settled?.() }
    }
  }

  /** resume (issue 12): frames that waited for the resume's outcome are handled first, in order. */
  private startReading (conn: Connection, queued: readonly QueuedFrame[]): void {
    const socket = conn.socket
    socket.on('message', onSocketMessage)
    for (const frame of queued) {
      if (!conn.isOpen) return
      handleFrame(this, conn, frame.data, frame.isBinary)
    }
    if (conn.isOpen && !conn.readingPaused) socket.resume()
  }

  /**
   * @internal Serialise, check and write one frame; count the outcome and
   * log a failure once. Never throws.
   */
  sendFrame (conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions): Promise<SendResult> {
    // resume (issue 12): a must-deliver frame goes through the session (parked, or resumed on a new socket).
    const session = this.delivery !== null && this.delivery.isNumbered(type, id, options?.droppable === true, options?.numbered === true)
      ? this.delivery.sessionOf(conn.id)
      : undefined
    if (!conn.isOpen && session === undefined) {
      // A droppable frame for a parked session (agent progress) is dropped, not failed: the run goes on.
      if (options?.droppable === true && this.delivery?.sessionOf(conn.id) !== undefined) {
        this.countFailedSend(conn, type, failure(SendFailure.DROPPED))
        return Promise.resolve(failure(SendFailure.DROPPED))
      }
      return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.NOT_OPEN)))
    }
    const route = options?.route
    if (route !== undefined && route.replyCheck !== null && this.config.validateOutbound && !route.replyCheck.Check(payload)) {
      const details = validationDetails(route.replyCheck, payload)
      return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.INVALID_OUTBOUND), details))
    }
    const encoded = encodeFrame(type, id, payload)
    if (!encoded.ok) return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.SERIALIZE, encoded.error)))
    const sent = session !== undefined ? Promise.resolve((this.delivery as ResumeEngine).sendNumbered(session, encoded.text)) : sendText(conn, encoded.text, this.config, options)
    return sent.then((result) => {
      if (result.ok) {
        this.stats.sendsOk++
        return result
      }
      if (result.reason === SendFailure.DROPPED) {
        // A droppable frame (typing, progress) dropped for a slow client: counted, not logged.
        this.countFailedSend(conn, type, result)
        return result
      }
      return this.sendFailed(conn, type, id, result)
    })
  }

  /** One frame written without waiting on the socket; its outcome counted, a failure logged once. */
  private writeNow (conn: Connection, type: string, id: MessageId | undefined, text: string): void {
    const outcome = writeNow(conn, text, this.config, false)
    if (outcome === 'WRITTEN' || outcome === 'BUFFERED') this.stats.sendsOk++
    else this.sendFailed(conn, type, id, failure(outcome))
  }

  /** @internal ContextHost: a send refused before the socket, counted and logged like the others. */
  reportSendFailure (conn: Connection, type: string, id: MessageId | undefined, result: SendFailed): SendResult {
    return this.sendFailed(conn, type, id, result)
  }

  private sendFailed (conn: Connection, type: string, id: MessageId | undefined, result: SendFailed, details?: unknown): SendResult {
    this.countFailedSend(conn, type, result)
    conn.log[this.config.sendFailureLogLevel]({
      messageType: type,
      messageId: id,
      reason: result.reason,
      state: conn.state,
      bufferedAmount: conn.socket.bufferedAmount,
      environment: this.config.environment,
      details,
      err: result.error
    }, 'websocket send failed')
    return result
  }

  /** @internal A frame ended in failure: count it, log it once, answer with an error frame. */
  rejectFrame (conn: Connection, failure: FrameFailure): void {
    // The ref ties the frame to its log line, so only a logged failure has one.
    const ref = failure.level === false ? undefined : newRef()
    if (failure.level !== false) {
      conn.log[failure.level]({
        code: failure.code,
        messageType: failure.messageType,
        messageId: failure.id,
        state: conn.state,
        environment: this.config.environment,
        ref,
        details: failure.details,
        err: failure.err
      }, failure.message)
    }
    if (conn.isOpen) {
      const payload: ErrorPayload = { code: failure.code, message: failure.message }
      if (failure.details !== undefined) payload.details = failure.details
      if (ref !== undefined) payload.ref = ref
      this.sendFrame(conn, 'error', failure.id, payload)
    }
    if (failure.consecutive !== false) this.countConsecutiveError(conn, failure.seq, failure.blame)
  }

  /**
   * @internal A frame refused by the token bucket: answered with
   * `RATE_LIMITED`, logged once per abuse window, and past the abuse
   * threshold the connection is closed with 1008.
   */
  rateLimited (conn: Connection, id: MessageId | undefined, now: number): void {
    this.stats.rateLimited++
    const limit = this.config.rateLimit as RateLimitConfig
    const firstInWindow = now - conn.abuseWindowStart > ABUSE_WINDOW_MS || conn.refusedInWindow === 0
    const abusive = countRefusal(conn, limit, now)
    if (this.config.protocol === 'jsonrpc') {
      sendJsonRpcFailure(this, conn, JsonRpcCode.RATE_LIMITED, typeof id === 'string' || typeof id === 'number' ? id : null)
    } else if (!firstInWindow) {
      // The steady state of a flood: a constant frame, written without waiting
      // (a flooder over the high-water mark is closed with 1013, not waited on).
      this.writeNow(conn, 'error', id, encodeWithPayload('error', id, this.rateLimitPayloadJson))
    } else {
      this.rejectFrame(conn, {
        code: WireErrorCode.RATE_LIMITED,
        message: this.rateLimitMessage,
        id,
        level: firstInWindow ? 'warn' : false,
        consecutive: false,
        seq: conn.frameSeq,
        blame: 'client'
      })
    }
    if (abusive) {
      this.closeConnection(conn, {
        code: CloseCode.POLICY_VIOLATION,
        reason: 'rate limit exceeded',
        counter: 'abuseCloses',
        level: 'warn',
        message: 'closing websocket: sustained flooding (1008)',
        fields: { refusedInWindow: conn.refusedInWindow }
      })
    }
  }

  /** @internal The frame that arrived as number `seq` succeeded (its reply may still be on its way). */
  countSuccess (conn: Connection, seq: number): void {
    frameSucceeded(conn, seq)
  }

  /**
   * A run of `maxConsecutiveErrors` failed frames, in arrival order, closes
   * the connection: with 1008 when the client caused every one of them
   * (invalid frames, validation, coded refusals), with 1011 when a handler
   * failure is among them.
   */
  private countConsecutiveError (conn: Connection, seq: number, blame: Blame): void {
    const run = frameFailed(conn, seq, blame)
    if (run >= this.config.maxConsecutiveErrors && conn.isOpen) {
      const server = runBlame(conn) === 'server'
      this.closeConnection(conn, {
        code: server ? CloseCode.INTERNAL_ERROR : CloseCode.POLICY_VIOLATION,
        reason: server ? 'too many consecutive errors' : 'too many invalid frames',
        level: 'warn',
        message: 'closing websocket after too many consecutive errors',
        fields: { consecutiveErrors: run }
      })
    }
  }

  /** @internal A handler threw or rejected. */
  handlerFailed (ctx: HandlerContext<unknown>, err: unknown): void {
    if (!ctx.finish()) return
    this.stats.handlerErrors++
    ctx.route.counters.failed++
    if (isWsRouterError(err)) {
      // A coded refusal: the handler judged the frame, so the client is to blame.
      this.rejectFrame(ctx.conn, { code: err.code, message: err.message, details: err.details, id: ctx.id, messageType: ctx.type, err, level: 'warn', seq: ctx.seq, blame: 'client' })
      ctx.sink?.settle(false, err.code, err.message)
      return
    }
    const message = this.config.exposeErrorMessages && err instanceof Error ? err.message : GENERIC_HANDLER_MESSAGE
    this.rejectFrame(ctx.conn, { code: WireErrorCode.HANDLER_ERROR, message, id: ctx.id, messageType: ctx.type, err, level: 'error', seq: ctx.seq, blame: 'server' })
    ctx.sink?.settle(false, WireErrorCode.HANDLER_ERROR, message)
  }

  /** @internal ContextHost: the sweeper found a handler past its deadline. */
  handlerTimedOut (ctx: HandlerContext<unknown>): void {
    if (!ctx.finish()) return
    this.stats.handlerTimeouts++
    ctx.route.counters.failed++
    const message = `Handler did not finish within ${ctx.route.timeoutMs} ms`
    ctx.abort(new Error(message))
    this.rejectFrame(ctx.conn, { code: WireErrorCode.HANDLER_TIMEOUT, message, id: ctx.id, messageType: ctx.type, level: 'error', seq: ctx.seq, blame: 'server' })
    ctx.sink?.settle(false, WireErrorCode.HANDLER_TIMEOUT, message)
  }

  /** @internal ContextHost: an async handler is no longer pending. */
  handlerReleased (ctx: HandlerContext<unknown>): void {
    this.sweeper.delete(ctx)
    const conn = ctx.conn
    conn.deletePending(ctx)
    conn.resumeReadingIfRoom(this.config.maxInFlight)
  }

  /** @internal Start tracking an async handler. */
  trackHandler (ctx: HandlerContext<unknown>): void {
    ctx.deadline = Date.now() + ctx.route.timeoutMs
    this.sweeper.add(ctx)
    const conn = ctx.conn
    conn.addPending(ctx)
    conn.holdReadingIfFull(this.config.maxInFlight)
  }

  /** @internal */
  newContext (conn: Connection, route: Route, id: MessageId | undefined, seq: number): HandlerContext<unknown> {
    const ctx = new HandlerContext(this, conn, route, id, seq)
    // The clock is read only when something observes: unobserved frames pay one null check.
    if (this.observer !== null) ctx.startedAt = performance.now()
    return ctx
  }

  /**
   * @internal A socket-level protocol error: ws refused a frame (bad framing,
   * invalid UTF-8, too big) and already began the close with the matching
   * code, or terminated a ping flood; or the router's own size check closed
   * the connection. Counted by code and logged once at `warn`, without a
   * stack (a client can cause it at connection rate); the connection leaves
   * its rooms at once.
   */
  protocolError (conn: Connection, code: string, closeCode: number | null, message: string): void {
    this.stats.countProtocolError(code)
    conn.log.warn({ code, closeCode: closeCode ?? undefined, message, state: conn.state, environment: this.config.environment }, 'websocket protocol error')
    if (closeCode !== null && conn.closeSent === null) conn.closeSent = closeCode
    // An error ws did not close for (none known today): no frame can be trusted, end it.
    if (conn.isOpen) conn.close(null, 'protocol error')
    this.detach(conn)
  }

  /** @internal the socket closed: release everything the connection owns, once. */
  removeConnection (conn: Connection, code: number): void {
    // (resume: a resumed connection may have taken this id while the old socket was closing.)
    if (this.connections.get(conn.id) !== conn) return
    this.connections.delete(conn.id)
    this.detach(conn, code)
    this.admissions.remove(conn.userId)
    this.stats.connectionsOpen--
    // The code the server sent when it closed first; otherwise the peer's (1006: none).
    this.stats.countClose(conn.closeSent ?? code)
    conn.release(new Error(`connection closed (${code})`))
    // resume (issue 12): a parked session's agent runs go on; the engine calls releaseConnection later.
    if (this.delivery === null || !this.delivery.holdsRelease(conn)) this.releaseConnection(conn)
    if (this.connections.size === 0) this.stopHeartbeat()
  }

  /** @internal Tell the built-ins that keep per-connection state that this connection is gone. */
  releaseConnection (conn: Connection): void {
    for (const listener of this.closeListeners) listener(conn)
  }

  private startHeartbeat (): void {
    this.heartbeatTimer = setInterval(heartbeat, this.config.heartbeatIntervalMs, this)
    this.heartbeatTimer.unref()
  }

  private stopHeartbeat (): void {
    if (this.heartbeatTimer !== null) {
      clearInterval(this.heartbeatTimer)
      this.heartbeatTimer = null
    }
  }

  /**
   * @internal One heartbeat pass over every connection: terminate the silent,
   * ask the too-old to reconnect, ping the rest. Exposed for tests with a
   * chosen clock.
   */
  [kHeartbeatTick] (now: number = Date.now()): void {
    const { livenessWindowMs, maxConnectionAgeMs, idleTimeoutMs } = this.config
    for (const conn of this.connections.values()) {
      if (!conn.isOpen) continue
      const expiresAt = conn.identity.expiresAt
      if (expiresAt !== undefined && now >= expiresAt) {
        this.closeConnection(conn, {
          code: CloseCode.POLICY_VIOLATION,
          reason: 'TOKEN_EXPIRED',
          level: 'info',
          message: 'closing websocket: its credentials expired (1008)',
          fields: { expiredMs: now - expiresAt }
        })
        continue
      }
      // A connection whose reading the router paused (maxInFlight) cannot show
      // its pongs: it is busy, not dead, and its handlers have their own timeouts.
      if (now - conn.lastSeenAt > livenessWindowMs && !conn.readingPaused) {
        this.closeConnection(conn, {
          code: null,
          reason: 'no pong',
          counter: 'heartbeatTerminations',
          level: 'info',
          message: 'terminating websocket: no pong within the liveness window',
          fields: { lastSeenMs: now - conn.lastSeenAt, livenessWindowMs }
        })
        continue
      }
      if (idleTimeoutMs > 0 && now - conn.lastFrameAt > idleTimeoutMs) {
        this.closeConnection(conn, {
          code: CloseCode.GOING_AWAY,
          reason: 'idle timeout',
          counter: 'idleCloses',
          level: 'info',
          message: 'closing idle websocket (1001)',
          fields: { idleMs: now - conn.lastFrameAt, idleTimeoutMs }
        })
        continue
      }
      if (maxConnectionAgeMs > 0 && now - conn.openedAt >= maxConnectionAgeMs) {
        if (!conn.retiring) this.retire(conn, 'max_connection_age')
        continue
      }
      conn.ping()
    }
  }

  /** Ask a client to reconnect (frame `reconnect`), then close with 1012. */
  private retire (conn: Connection, reason: string): void {
    conn.retiring = true
    conn.log.info({ reason, ageMs: Date.now() - conn.openedAt, environment: this.config.environment }, 'asking websocket client to reconnect (1012)')
    const retryAfterMs = Math.floor(Math.random() * 1000)
    this.sendFrame(conn, 'reconnect', undefined, { reason, retryAfterMs }).then(() => {
      this.closeConnection(conn, { code: CloseCode.SERVICE_RESTART, reason, level: false })
    })
  }

  /**
   * @internal Graceful shutdown: close every client with 1001, wait up to
   * `shutdownGraceMs`, then terminate whoever is left.
   */
  async close (): Promise<void> {
    this.closing = true
    this.stopHeartbeat()
    this.sweeper.stop()
    const open = [...this.connections.values()]
    const shutdown = new Error('server shutting down')
    for (const conn of open) conn.release(shutdown)
    if (open.length === 0) {
      await this.delivery?.close()
      await this.adapter.close()
      return
    }
    await new Promise<void>((resolve) => {
      let left = open.length
      let lastResort: NodeJS.Timeout | undefined
      const timer = setTimeout(() => {
        for (const conn of open) {
          conn.terminate()
        }
        // A transport that never reports its end (app.injectWS's in-memory
        // socket) must not hold app.close(): give up waiting shortly after.
        lastResort = setTimeout(resolve, TERMINATE_SETTLE_MS)
        lastResort.unref()
      }, this.config.shutdownGraceMs)
      const onClosed = (): void => {
        if (--left === 0) {
          clearTimeout(timer)
          clearTimeout(lastResort)
          resolve()
        }
      }
      if (this.config.shutdownGraceMs > 0) timer.unref()
      for (const conn of open) {
        if (conn.socket.readyState === 3) {
          onClosed()
          continue
        }
        conn.socket.once('close', onClosed)
        this.closeConnection(conn, { code: CloseCode.GOING_AWAY, reason: 'server shutting down', level: false })
      }
    })
    await this.delivery?.close()
    await this.adapter.close()
  }
}

export interface FanoutOptions extends SendOptions {
  /** Leave this connection out (the sender's own, say). */
  readonly except?: string | undefined
}

/** The outcome of a fan-out: every target accounted for. */
export interface FanoutResult {
  /** Every target got the frame (and at least one target existed). */
  ok: boolean
  /** `NO_TARGET`: nobody, on any instance, matched; `SERIALIZE`: the payload could not be encoded. */
  reason?: 'NO_TARGET' | typeof SendFailure.SERIALIZE
  /** Local connections the frame was handed to (or tried). */
  targets: number
  /** Local targets that accepted the frame: `written + buffered`. */
  delivered: number
  /** Local targets that did not take it, with the reason (`DROPPED` ones included). */
  failed: FailedTarget[]
  /** Local targets whose socket took the whole frame at once. */
  written: number
  /** Local targets that accepted it into their send buffer, behind earlier frames. */
  buffered: number
  /** Local targets that skipped a droppable frame, being over the high-water mark (also in `failed`). */
  dropped: number
  /** Other instances (null with the in-memory adapter). */
  remote: RemoteOutcome | null
}

function noop (): void {}

/** After terminate() at the end of the grace, how long close() still waits for the sockets' 'close'. */
const TERMINATE_SETTLE_MS = 500

const CLOSING = 2

function heartbeat (router: WsRouter): void {
  router[kHeartbeatTick]()
}

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  const socket = this as RoutedSocket
  handleFrame(socket[kRouter], socket[kConnection], data, isBinary)
}

function onSocketPong (this: WebSocket): void {
  (this as RoutedSocket)[kConnection].lastSeenAt = Date.now()
}

/**
 * ws (>= 8.23) terminates a peer that sends pings faster than it reads the
 * pongs (`maxPendingAutoPongs`), then still emits the ping: a socket that
 * went CLOSING on a ping, without the router closing it, was a ping flood.
 */
function onSocketPing (this: WebSocket): void {
  if (this.readyState !== CLOSING) return
  const socket = this as RoutedSocket
  const conn = socket[kConnection]
  if (conn.detached) return
  socket[kRouter].protocolError(conn, 'PING_FLOOD', null, 'ping flood: the peer did not read its pongs (maxPendingAutoPongs)')
}

function onSocketError (this: WebSocket, error: Error): void {
  const socket = this as RoutedSocket
  const code = (error as { code?: unknown }).code
  socket[kRouter].protocolError(socket[kConnection], typeof code === 'string' ? code : 'UNKNOWN', closeCodeOf(error), error.message)
}

/** The close code ws sent for an error it raised while reading (kept on a symbol of its own). */
function closeCodeOf (error: Error): number | null {
  for (const key of Object.getOwnPropertySymbols(error)) {
    if (key.description === 'status-code') {
      const value = (error as unknown as Record<symbol, unknown>)[key]
      return typeof value === 'number' ? value : null
    }
  }
  return null
}

function onSocketClose (this: WebSocket, code: number): void {
  const socket = this as RoutedSocket
  socket[kRouter].removeConnection(socket[kConnection], code)
}

/** A short reference that ties an error frame to its log line. */
function newRef (): string {
  return randomBytes(6).toString('hex')
}
