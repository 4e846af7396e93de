import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { AdapterHost, FanoutTarget, LocalDelivery } from './adapter.js'
import type { BuiltinHost } from './builtin-host.js'
import { closeConnection, type ServerClose } from './closing.js'
import type { Connection } from './connection.js'
import { RouterCore } from './core.js'
import type { PipelineHost } from './dispatch.js'
import type { MessageId } from './envelope.js'
import { CloseCode, FST_WSR_REGISTRY_LOCKED, SendFailure } from './errors.js'
import { fanout, handOver } from './fanout.js'
import type { Identity } from './identity.js'
import { MethodRegistry, type MethodHandler, type MethodOptions } from './jsonrpc.js'
import { heartbeatTick } from './liveness.js'
import type { RouterConfig } from './options.js'
import { closeStuck, sendFrame, type OutboundOptions } from './outbound.js'
import { HandlerRegistry, type MessageHandler, type RouteOptions } from './registry.js'
import type { WsSchema } from './schema.js'
import { failure, type SendResult } from './send.js'
import { goAway, shutdown } from './shutdown.js'
import { accept, acceptOrResume, adopt, releaseConnection, startReading } from './socket-events.js'
import { ResumeEngine, type DeliveryHost } from './delivery/resume.js'

/**
 * The engine behind one `WsRouter`: the shared state (lib/core.ts), the two
 * registries, and the entry points the plugin wiring, the adapter and the
 * built-ins use. Each job is a module of its own; this class only holds
 * them together. Reached from the facade through a symbol, never exported
 * from lib/index.ts.
 */
export class Engine extends RouterCore implements PipelineHost, AdapterHost {
  declare readonly config: RouterConfig
  readonly registry: HandlerRegistry
  readonly methods = new MethodRegistry()
  /** What the built-ins are given (lib/builtin-host.ts). */
  readonly builtins: BuiltinHost
  private locked = false

  constructor (config: RouterConfig, log: FastifyBaseLogger) {
    super(config, log)
    this.registry = new HandlerRegistry(this.stats, config.handlerTimeoutMs)
    this.builtins = builtinHost(this)
    // Resume (issue 12): the owner in the store is the adapter's instance id when it has one (Redis).
    const instanceId = (config.adapter as { instanceId?: unknown }).instanceId
    if (config.resume !== false) this.delivery = new ResumeEngine(config.resume, deliveryHost(this), config, typeof instanceId === 'string' ? instanceId : undefined)
  }

  /** Register a route; no handler may be added once connections are served. */
  addRoute (type: string, options: RouteOptions<WsSchema | undefined, WsSchema | undefined>, handler: MessageHandler<unknown, unknown>): void {
    if (this.locked) throw new FST_WSR_REGISTRY_LOCKED(type)
    const route = this.registry.add(type, options, handler)
    this.sweeper.considerTimeout(route.timeoutMs)
  }

  addMethod (name: string, options: MethodOptions<WsSchema | undefined>, handler: MethodHandler): void {
    if (this.locked) throw new FST_WSR_REGISTRY_LOCKED(`rpc:${name}`)
    const method = this.methods.add(name, options, handler, this.config.handlerTimeoutMs, this.stats.countersFor(`rpc:${name}`))
    this.sweeper.considerTimeout(method.timeoutMs)
  }

  lock (): void {
    this.locked = true
  }

  /** Adopt a socket the plugin upgraded (lib/socket-events.ts). */
  accept (socket: WebSocket, request: FastifyRequest, identity: Identity): Connection {
    return accept(this, socket, request, identity)
  }

  /** Resume (issue 12): `accept`, or a resume decided later (undefined then; lib/socket-events.ts). */
  acceptOrResume (socket: WebSocket, request: FastifyRequest, identity: Identity): Connection | undefined {
    return acceptOrResume(this, socket, request, identity)
  }

  /** Graceful shutdown (lib/shutdown.ts). */
  close (): Promise<void> {
    return shutdown(this)
  }

  /** AdapterHost: a frame from another instance, handed to the local targets without waiting on any. */
  deliverLocal (target: FanoutTarget, type: string, text: string, droppable: boolean, mid?: string): Promise<LocalDelivery> {
    return Promise.resolve(handOver(this, target, type, text, droppable, mid))
  }

  /** AdapterHost (issue 12, fence): what this instance handed over for a session is settled in its store. */
  fenced (sessionId: string, takeover = false, asker?: string): Promise<number> {
    return this.delivery === null ? Promise.resolve(0) : this.delivery.settled(sessionId, takeover, asker)
  }

  /** AdapterHost (issue 12): an agent event from the instance this session was taken over from. */
  deliverToSession (sessionId: string, text: string): void {
    if (this.delivery?.route(sessionId, text, false, undefined) !== undefined) return
    // The session left this instance too (ended, or its client gone while it was claimed): its next resume is refused.
    this.stats.countSendFailure(SendFailure.NOT_OPEN)
    this.log[this.config.sendFailureLogLevel]({ sessionId, reason: SendFailure.NOT_OPEN, environment: this.config.environment }, 'resume: an event forwarded from another instance found no session here')
  }

  /** The live connection object for an id. */
  connection (connectionId: string): Connection | undefined {
    return this.connections.get(connectionId)
  }

  /** Close a connection the server decided to close (lib/closing.ts). */
  closeConnection (conn: Connection, close: ServerClose): boolean {
    return closeConnection(this, conn, close)
  }

  /** One heartbeat pass at time `now` (lib/liveness.ts), as the timer runs it. */
  heartbeatTick (now: number): void {
    heartbeatTick(this, now)
  }

  /** Send to one connection by id: `NOT_OPEN`, counted and logged, when there is none. */
  sendTo (connectionId: string, type: string, id: MessageId | undefined, payload: unknown, options?: OutboundOptions): Promise<SendResult> {
    // Resume (issue 12): a parked session's events are numbered and stored through its last connection.
    const conn = this.connections.get(connectionId) ?? this.delivery?.sessionOf(connectionId)?.holder
    if (conn === undefined) {
      this.stats.countSendFailure(SendFailure.NOT_OPEN)
      this.log[this.config.sendFailureLogLevel]({ connectionId, messageType: type, reason: SendFailure.NOT_OPEN, environment: this.config.environment }, 'websocket send failed: no such connection')
      return Promise.resolve(failure(SendFailure.NOT_OPEN))
    }
    return sendFrame(this, conn, type, id, payload, options)
  }
}

/** The functions a built-in is given: built once per router. */
function builtinHost (engine: Engine): BuiltinHost {
  const adapter = engine.adapter
  return {
    config: engine.config,
    on: (type, options, handler) => engine.addRoute(type, options as RouteOptions<WsSchema | undefined, WsSchema | undefined>, handler as MessageHandler<unknown, unknown>),
    alias: (alias, target) => engine.registry.alias(alias, target),
    join: (connectionId, room) => adapter.join(connectionId, room),
    leave: (connectionId, room) => adapter.leave(connectionId, room),
    isMember: (connectionId, room) => adapter.isMember(connectionId, room),
    roomCount: (connectionId) => adapter.roomCount(connectionId),
    sendToRoom: (room, type, payload, options) => fanout(engine, { kind: 'room', room, except: options?.except }, type, payload, options),
    sendFrame: (connectionId, type, requestId, payload, options) => engine.sendTo(connectionId, type, requestId, payload, options),
    isOpen: (connectionId) => engine.connections.get(connectionId)?.isOpen === true,
    canReceive: (connectionId) => engine.connections.get(connectionId)?.isOpen === true || engine.delivery?.sessionOf(connectionId) !== undefined,
    closeNormally: (connectionId, reason) => {
      const conn = engine.connections.get(connectionId)
      if (conn !== undefined) closeConnection(engine, conn, { code: CloseCode.NORMAL, reason, level: false })
    },
    countBuiltin: (name) => engine.stats.countBuiltin(name),
    countClientError: (code) => engine.stats.countClientError(code),
    onConnectionClosed: (listener) => { engine.closeListeners.push((conn) => listener(conn.id)) },
    state: new Map(),
    get tracing () { return engine.tracing }
  }
}

/** Resume (issue 12): what the delivery engine may ask of the router, in one place. */
function deliveryHost (engine: Engine): DeliveryHost {
  const adapter = engine.adapter
  return {
    log: engine.log,
    environment: engine.config.environment,
    roomsOf: (connectionId) => adapter.roomsOf(connectionId),
    join: (connectionId, room) => adapter.join(connectionId, room),
    adopt: (socket, request, identity, resumed) => adopt(engine, socket, request, identity, resumed),
    startReading: (conn, queued) => startReading(engine, conn, queued),
    sendControl: (conn, type, payload) => { sendFrame(engine, conn, type, undefined, payload) },
    closeStuck: (conn) => closeStuck(engine, conn),
    releaseConnection: (conn) => releaseConnection(engine, conn),
    forgetConnection: (connectionId) => adapter.removeConnection(connectionId),
    abandonAdmission: (userId) => engine.admissions.remove(userId),
    get closing () { return engine.closing },
    goAway: (socket) => goAway(engine, socket),
    // resume-redis: a resume from another instance joins first
    addConnection: (connectionId, userId) => adapter.addConnection(connectionId, userId),
    settled: async () => { await adapter.settled?.() },
    fence: async (owner, sessionId, userId, rooms, timeoutMs, takeover) => {
      if (adapter.fence === undefined) return undefined
      const targets: FanoutTarget[] = [{ kind: 'all' }, { kind: 'user', userId }, ...rooms.map((room): FanoutTarget => ({ kind: 'room', room }))]
      return await adapter.fence({ instanceId: owner, sessionId, targets, takeover }, timeoutMs)
    },
    forward: async (instanceId, sessionId, text) => {
      if (adapter.forward === undefined) throw new Error('the adapter cannot forward events to another instance')
      await adapter.forward(instanceId, sessionId, text)
    },
    // Not a failure: the client is on its newer connection (closedByCode counts 4001; no log line).
    takeOver: (conn) => { closeConnection(engine, conn, { code: CloseCode.SESSION_TAKEN_OVER, reason: 'session resumed by a newer connection', level: false }) }
  }
}
