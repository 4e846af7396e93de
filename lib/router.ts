import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { TSchema } from '@sinclair/typebox'
import type { RawData, WebSocket } from 'ws'
import { Connection, type ConnectionStatus } from './connection.js'
import { HandlerContext, type OutboundOptions } from './context.js'
import { DeadlineSweeper } from './deadlines.js'
import { encodeFrame, PROTOCOL_VERSION, type MessageId } from './envelope.js'
import { CloseCode, FST_WSR_REGISTRY_LOCKED, SendFailure, WireErrorCode, isWsRouterError } from './errors.js'
import type { RouterConfig } from './options.js'
import { HandlerRegistry, validationDetails, type MessageHandler, type PayloadOf, type Route, type RouteOptions } from './registry.js'
import { failure, sendText, type SendFailed, type SendOptions, type SendResult } from './send.js'
import { RouterStats, type StatsSnapshot } from './stats.js'
import { handleFrame } from './dispatch.js'

const kConnection = Symbol('fastify-ws-router.connection')
const kRouter = Symbol('fastify-ws-router.router')

interface RoutedSocket extends WebSocket {
  [kConnection]: Connection
  [kRouter]: WsRouter
}

const GENERIC_HANDLER_MESSAGE = 'The server could not handle this message'

/** Options of a failure answered with an error frame. */
interface FrameFailure {
  readonly code: string
  readonly message: string
  readonly id: MessageId | undefined
  readonly messageType?: string | undefined
  readonly details?: unknown
  readonly err?: unknown
  /** Log level of the one log line; `false` when it was logged already. */
  readonly level: 'info' | 'warn' | 'error' | false
}

/**
 * One router: its handler registry, its connections, its counters, its one
 * heartbeat timer. Two routers share nothing.
 */
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
  private readonly connections = new Map<string, Connection>()
  private readonly log: FastifyBaseLogger
  private locked = false
  private heartbeatTimer: NodeJS.Timeout | null = null
  private closing = false

  constructor (config: RouterConfig, log: FastifyBaseLogger) {
    this.config = config
    this.log = log
    this.sweeper = new DeadlineSweeper(config.handlerTimeoutMs)
    this.registry = new HandlerRegistry(this.stats, config.handlerTimeoutMs)
  }

  /**
   * Register a handler for one message type. The payload type is inferred
   * from `schema`; the reply type from `replySchema`.
   *
   * @example
   * app.wsRouter.on('echo', { schema: Type.Object({ text: Type.String() }) }, (payload) => ({ text: payload.text }))
   */
  on<PayloadSchema extends TSchema | undefined = undefined, ReplySchema extends TSchema | undefined = undefined>(
    type: string,
    options: RouteOptions<PayloadSchema, ReplySchema>,
    handler: MessageHandler<PayloadOf<PayloadSchema>, PayloadOf<ReplySchema>>
  ): this
  on (type: string, handler: MessageHandler<unknown, unknown>): this
  on (type: string, optionsOrHandler: unknown, maybeHandler?: unknown): this {
    if (this.locked) throw new FST_WSR_REGISTRY_LOCKED(type)
    if (typeof optionsOrHandler === 'function') {
      this.registry.add(type, {}, optionsOrHandler as MessageHandler<unknown, unknown>)
    } else {
      const options = (optionsOrHandler ?? {}) as RouteOptions<TSchema | undefined, TSchema | undefined>
      this.registry.add(type, options, maybeHandler as MessageHandler<unknown, unknown>)
    }
    return this
  }

  /** Whether a handler is registered for this type. */
  hasHandler (type: string): boolean {
    return this.registry.has(type)
  }

  /** A copy of the counters. */
  getStats (): StatsSnapshot {
    return this.stats.snapshot()
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
    const conn = this.connections.get(connectionId)
    if (conn === undefined) return Promise.resolve(failure(SendFailure.NOT_OPEN))
    return this.sendFrame(conn, type, undefined, payload, options)
  }

  /** @internal no handler may be added once connections are served. */
  lock (): void {
    this.locked = true
  }

  /** @internal */
  get isClosing (): boolean {
    return this.closing
  }

  /** @internal the socket's connection, for the request decorator. */
  static connectionOf (socket: WebSocket): Connection | undefined {
    return (socket as Partial<RoutedSocket>)[kConnection]
  }

  /**
   * @internal Adopt a new socket: attach listeners synchronously (a late
   * listener loses frames), then greet the client.
   */
  accept (socket: WebSocket, request: FastifyRequest, userId: string): Connection {
    const id = randomUUID()
    const log = request.log.child({ connectionId: id, userId })
    const conn = new Connection(id, userId, socket, request, log, this.config)
    const routed = socket as RoutedSocket
    routed[kConnection] = conn
    routed[kRouter] = this
    socket.on('message', onSocketMessage)
    socket.on('pong', onSocketPong)
    socket.on('close', onSocketClose)
    this.connections.set(id, conn)
    this.stats.connectionsOpen++
    this.stats.connectionsTotal++
    if (this.heartbeatTimer === null) this.startHeartbeat()
    this.sendFrame(conn, 'connection_established', undefined, {
      connectionId: id,
      userId,
      protocolVersion: PROTOCOL_VERSION,
      heartbeatIntervalMs: this.config.heartbeatIntervalMs,
      maxPayloadBytes: this.config.maxPayloadBytes
    })
    return conn
  }

  /**
   * @internal Serialise, check and write one frame; count the outcome and
   * log a failure once. Never throws.
   */
  sendFrame (conn: Connection, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions): Promise<SendResult> {
    if (!conn.isOpen) return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.NOT_OPEN)))
    const route = options?.route
    if (route !== undefined && route.replyCheck !== null && this.config.validateOutbound && !route.replyCheck.Check(payload)) {
      const details = validationDetails(route.replyCheck, payload)
      return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.INVALID_OUTBOUND), details))
    }
    const encoded = encodeFrame(type, id, payload)
    if (!encoded.ok) return Promise.resolve(this.sendFailed(conn, type, id, failure(SendFailure.SERIALIZE, encoded.error)))
    return sendText(conn, encoded.text, this.config, options).then((result) => {
      if (result.ok) {
        this.stats.sendsOk++
        return result
      }
      return this.sendFailed(conn, type, id, result)
    })
  }

  private sendFailed (conn: Connection, type: string, id: MessageId | undefined, result: SendFailed, details?: unknown): SendResult {
    this.stats.countSendFailure(result.reason)
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
    this.stats.countInvalid(failure.code)
    const ref = newRef()
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
      const payload = failure.details === undefined
        ? { code: failure.code, message: failure.message, ref }
        : { code: failure.code, message: failure.message, details: failure.details, ref }
      this.sendFrame(conn, 'error', failure.id, payload)
    }
    this.countError(conn)
  }

  /** @internal A frame was answered without failure. */
  countSuccess (conn: Connection): void {
    conn.consecutiveErrors = 0
  }

  private countError (conn: Connection): void {
    if (++conn.consecutiveErrors >= this.config.maxConsecutiveErrors && conn.isOpen) {
      conn.log.warn({ consecutiveErrors: conn.consecutiveErrors, environment: this.config.environment }, 'closing websocket after too many consecutive errors')
      conn.socket.close(CloseCode.INTERNAL_ERROR, 'too many consecutive errors')
    }
  }

  /** @internal A handler threw or rejected. */
  handlerFailed (ctx: HandlerContext<unknown>, err: unknown): void {
    if (!ctx.finish()) return
    this.stats.handlerErrors++
    ctx.route.counters.failed++
    if (isWsRouterError(err)) {
      this.rejectFrame(ctx.conn, { code: err.code, message: err.message, details: err.details, id: ctx.id, messageType: ctx.type, err, level: 'warn' })
      return
    }
    const message = this.config.exposeErrorMessages && err instanceof Error ? err.message : GENERIC_HANDLER_MESSAGE
    this.rejectFrame(ctx.conn, { code: WireErrorCode.HANDLER_ERROR, message, id: ctx.id, messageType: ctx.type, err, level: 'error' })
  }

  /** @internal ContextHost: the sweeper found a handler past its deadline. */
  handlerTimedOut (ctx: HandlerContext<unknown>): void {
    if (!ctx.finish()) return
    this.stats.handlerTimeouts++
    ctx.route.counters.failed++
    const message = `Handler did not finish within ${ctx.route.timeoutMs} ms`
    ctx.abort(new Error(message))
    this.rejectFrame(ctx.conn, { code: WireErrorCode.HANDLER_TIMEOUT, message, id: ctx.id, messageType: ctx.type, level: 'error' })
  }

  /** @internal ContextHost: an async handler is no longer pending. */
  handlerReleased (ctx: HandlerContext<unknown>): void {
    this.sweeper.delete(ctx)
    ctx.conn.deletePending(ctx)
  }

  /** @internal Start tracking an async handler. */
  trackHandler (ctx: HandlerContext<unknown>): void {
    ctx.deadline = Date.now() + ctx.route.timeoutMs
    this.sweeper.add(ctx)
    ctx.conn.addPending(ctx)
  }

  /** @internal */
  newContext (conn: Connection, route: Route, id: MessageId | undefined): HandlerContext<unknown> {
    return new HandlerContext(this, conn, route, id)
  }

  /** @internal the socket closed: release everything the connection owns, once. */
  removeConnection (conn: Connection, code: number): void {
    if (!this.connections.delete(conn.id)) return
    conn.closeCode = code
    this.stats.connectionsOpen--
    this.stats.countClose(code)
    conn.release(new Error(`connection closed (${code})`))
    if (this.connections.size === 0) this.stopHeartbeat()
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
  heartbeatTick (now: number = Date.now()): void {
    const { livenessWindowMs, maxConnectionAgeMs } = this.config
    for (const conn of this.connections.values()) {
      if (!conn.isOpen) continue
      if (now - conn.lastSeenAt > livenessWindowMs) {
        this.stats.heartbeatTerminations++
        conn.log.info({ lastSeenMs: now - conn.lastSeenAt, livenessWindowMs, environment: this.config.environment }, 'terminating websocket: no pong within the liveness window')
        conn.socket.terminate()
        continue
      }
      if (maxConnectionAgeMs > 0 && now - conn.openedAt >= maxConnectionAgeMs) {
        this.retire(conn, 'max_connection_age')
        continue
      }
      conn.socket.ping()
    }
  }

  /** Ask a client to reconnect (frame `reconnect`), then close with 1012. */
  private retire (conn: Connection, reason: string): void {
    const retryAfterMs = Math.floor(Math.random() * 1000)
    this.sendFrame(conn, 'reconnect', undefined, { reason, retryAfterMs }).then(() => {
      if (conn.isOpen) conn.socket.close(CloseCode.SERVICE_RESTART, reason)
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
    if (open.length === 0) return
    await new Promise<void>((resolve) => {
      let left = open.length
      const timer = setTimeout(() => {
        for (const conn of open) {
          if (conn.socket.readyState !== 3) conn.socket.terminate()
        }
      }, this.config.shutdownGraceMs)
      const onClosed = (): void => {
        if (--left === 0) {
          clearTimeout(timer)
          resolve()
        }
      }
      for (const conn of open) {
        if (conn.socket.readyState === 3) {
          onClosed()
          continue
        }
        conn.socket.once('close', onClosed)
        conn.socket.close(CloseCode.GOING_AWAY, 'server shutting down')
      }
    })
  }
}

function heartbeat (router: WsRouter): void {
  router.heartbeatTick()
}

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  const socket = this as RoutedSocket
  handleFrame(socket[kRouter], socket[kConnection], data, isBinary)
}

function onSocketPong (this: WebSocket): void {
  (this as RoutedSocket)[kConnection].lastSeenAt = Date.now()
}

function onSocketClose (this: WebSocket, code: number): void {
  const socket = this as RoutedSocket
  socket[kRouter].removeConnection(socket[kConnection], code)
}

/** A short reference that ties an error frame to its log line. */
function newRef (): string {
  return randomBytes(6).toString('hex')
}
