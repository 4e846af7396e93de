import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { Connection } from './connection.js'
import { detach, protocolError } from './closing.js'
import { handleFrame, type PipelineHost } from './dispatch.js'
import { PROTOCOL_VERSION } from './envelope.js'
import type { Identity } from './identity.js'
import { startHeartbeat, stopHeartbeat } from './liveness.js'
import { ignoreOutcome, sendFrameThen } from './outbound.js'
import type { RouterCore } from './core.js'
import type { QueuedFrame, ResumeGreeting } from './delivery/resume.js'
import { kRequestConnection } from './symbols.js'

/**
 * Socket wiring: a new socket is adopted (its listeners attached
 * synchronously, a late listener loses frames), and its events reach the
 * frame path, liveness and closing. Listeners are module-level functions
 * that find the connection and its router on the socket (symbols), so no
 * closure is made per connection.
 */

const kConnection = Symbol('fastify-ws-router.connection')
const kHost = Symbol('fastify-ws-router.router')

interface RoutedSocket extends WebSocket {
  [kConnection]: Connection
  [kHost]: PipelineHost
}

interface AdoptedRequest extends FastifyRequest {
  [kRequestConnection]?: Connection
}

const CLOSING = 2

/** Adopt a new socket: attach listeners, register the connection, then greet the client. */
export function accept (host: PipelineHost, socket: WebSocket, request: FastifyRequest, identity: Identity): Connection {
  const conn = adopt(host, socket, request, identity, null)
  socket.on('message', onSocketMessage)
  return conn
}

/**
 * Resume (issue 12): `accept`, unless the client asks to resume
 * (`?resume=`): then it is adopted once its claim is decided (undefined here).
 */
export function acceptOrResume (host: PipelineHost, socket: WebSocket, request: FastifyRequest, identity: Identity): Connection | undefined {
  const delivery = host.delivery
  if (delivery !== null && host.config.protocol !== 'jsonrpc') {
    const asked = delivery.requested(request.query)
    if (asked !== null) {
      delivery.resume(socket, request, identity, asked)
      return undefined
    }
  }
  return accept(host, socket, request, identity)
}

/**
 * Attach the listeners (but `message`, which the caller attaches) and greet
 * the client: under a new id, or (resume) under the session's.
 */
export function adopt (host: PipelineHost, socket: WebSocket, request: FastifyRequest, identity: Identity, resumed: { id: string, greeting: ResumeGreeting } | null): Connection {
  const id = resumed?.id ?? randomUUID()
  const userId = identity.userId
  const config = host.config
  // Resume: the previous socket of this session may still be closing; its close is settled now.
  const previous = host.connections.get(id)
  if (previous !== undefined) removeConnection(host, previous, 1006)
  const burst = config.rateLimit === false ? 0 : config.rateLimit.burst
  const conn = new Connection(id, identity, socket, request, request.log, config, burst)
  const routed = socket as RoutedSocket
  routed[kConnection] = conn
  routed[kHost] = host
  // request.checkConnection() reads this: set here, so a resumed connection has it too.
  ;(request as AdoptedRequest)[kRequestConnection] = conn
  socket.on('pong', onSocketPong)
  socket.on('ping', onSocketPing)
  socket.on('close', onSocketClose)
  // The router owns its sockets' errors, whoever registered @fastify/websocket:
  // its default handler logs a stack at error level and terminates (the peer
  // and closedByCode would see 1006 instead of the code ws sent).
  socket.removeAllListeners('error')
  socket.on('error', onSocketError)
  host.connections.set(id, conn)
  host.tracing?.connectionOpened(conn)
  host.adapter.addConnection(id, userId)
  host.stats.connectionsOpen++
  host.stats.connectionsTotal++
  startHeartbeat(host)
  // A JSON-RPC route speaks nothing but JSON-RPC, so stock clients work unchanged.
  if (config.protocol === 'jsonrpc') return conn
  const greeting: Record<string, unknown> = {
    connectionId: id,
    userId,
    protocolVersion: PROTOCOL_VERSION,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    maxPayloadBytes: config.maxPayloadBytes
  }
  // Resume (issue 12): the session's token, new or the one presented.
  if (host.delivery !== null) greeting.resume = resumed?.greeting ?? host.delivery.open(conn)
  sendFrameThen(host, conn, 'connection_established', undefined, greeting, undefined, ignoreOutcome, null)
  return conn
}

/** Resume (issue 12): frames that waited for the resume's outcome are handled first, in order. */
export function startReading (host: PipelineHost, conn: Connection, queued: readonly QueuedFrame[]): void {
  const socket = conn.socket
  socket.on('message', onSocketMessage)
  for (const frame of queued) {
    if (!conn.isOpen) return
    handleFrame(host, conn, frame.data, frame.isBinary)
  }
  if (conn.isOpen && !conn.readingPaused) socket.resume()
}

/** The socket closed: release everything the connection owns, once. */
export function removeConnection (host: PipelineHost, conn: Connection, code: number): void {
  // (Resume: a resumed connection may have taken this id while the old socket was closing.)
  if (host.connections.get(conn.id) !== conn) return
  host.connections.delete(conn.id)
  detach(host, conn, code)
  host.admissions.remove(conn.userId)
  host.stats.connectionsOpen--
  // The code the server sent when it closed first; otherwise the peer's (1006: none).
  host.stats.countClose(conn.closeSent ?? code)
  conn.release(new Error(`connection closed (${code})`))
  // Resume (issue 12): a parked session's agent runs go on; the delivery engine calls releaseConnection later.
  if (host.delivery === null || !host.delivery.holdsRelease(conn)) releaseConnection(host, conn)
  if (host.connections.size === 0) stopHeartbeat(host)
}

/** Tell the built-ins that keep per-connection state that this connection is gone. */
export function releaseConnection (host: RouterCore, conn: Connection): void {
  for (const listener of host.closeListeners) listener(conn)
}

function onSocketMessage (this: WebSocket, data: RawData, isBinary: boolean): void {
  const socket = this as RoutedSocket
  handleFrame(socket[kHost], socket[kConnection], data, isBinary)
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
  protocolError(socket[kHost], conn, 'PING_FLOOD', null, 'ping flood: the peer did not read its pongs (maxPendingAutoPongs)')
}

function onSocketError (this: WebSocket, error: Error): void {
  const socket = this as RoutedSocket
  const code = (error as { code?: unknown }).code
  protocolError(socket[kHost], socket[kConnection], typeof code === 'string' ? code : 'UNKNOWN', closeCodeOf(error), error.message)
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
  removeConnection(socket[kHost], socket[kConnection], code)
}
