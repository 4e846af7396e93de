import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'

/**
 * The one place the server closes a connection: the close code, its counter
 * and one log line together, and the connection leaves its rooms and user
 * list at once. Socket-level protocol errors end here too.
 */

/** Counters of server-initiated closes, in RouterStats. */
export type CloseCounter = 'abuseCloses' | 'backpressureCloses' | 'idleCloses' | 'heartbeatTerminations'

/** A close the server decides: its code, its counter and its one log line, together. */
export interface ServerClose {
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
 * Close a connection with a code, count it and log it once. The connection
 * leaves its rooms and its user's list at once, not after the close
 * handshake (a peer that does not read may hold CLOSING for ws's 30 s close
 * timeout). False when the connection was no longer open.
 */
export function closeConnection (core: RouterCore, conn: Connection, close: ServerClose): boolean {
  if (!conn.isOpen) return false
  if (close.counter !== undefined) core.stats[close.counter]++
  if (close.level !== false) conn.log[close.level]({ ...close.fields, code: close.code ?? undefined, environment: core.config.environment }, close.message ?? close.reason)
  conn.close(close.code, close.reason)
  detach(core, conn)
  return true
}

/** Out of every room and user list (the adapter's), once; the connection object stays until its socket closes. */
export function detach (core: RouterCore, conn: Connection, peerCode: number | null = null): void {
  if (conn.detached) return
  conn.detached = true
  // Resume (issue 12): a parked session keeps its rooms and user entry for its window.
  if (core.delivery !== null && core.delivery.park(conn, peerCode)) return
  core.adapter.removeConnection(conn.id)
}

/**
 * A socket-level protocol error: ws refused a frame (bad framing, invalid
 * UTF-8, too big) and already began the close with the matching code, or
 * terminated a ping flood; or the router's own size check closed the
 * connection. Counted by code and logged once at `warn`, without a stack
 * (a client can cause it at connection rate); the connection leaves its
 * rooms at once.
 */
export function protocolError (core: RouterCore, conn: Connection, code: string, closeCode: number | null, message: string): void {
  core.stats.countProtocolError(code)
  conn.log.warn({ code, closeCode: closeCode ?? undefined, message, state: conn.state, environment: core.config.environment }, 'websocket protocol error')
  if (closeCode !== null && conn.closeSent === null) conn.closeSent = closeCode
  // An error ws did not close for (none known today): no frame can be trusted, end it.
  if (conn.isOpen) conn.close(null, 'protocol error')
  detach(core, conn)
}
