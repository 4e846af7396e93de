import type { WebSocket } from 'ws'
import type { RouterCore } from './core.js'
import { closeConnection } from './closing.js'
import { CloseCode } from './errors.js'
import { stopHeartbeat } from './liveness.js'

/** After terminate() at the end of the grace, how long shutdown still waits for the sockets' 'close'. */
const TERMINATE_SETTLE_MS = 500

const CLOSED = 3

/**
 * Graceful shutdown: no new upgrades, every running handler cancelled,
 * every client closed with 1001; after `shutdownGraceMs` whoever is left is
 * terminated. The adapter is closed last.
 */
export async function shutdown (core: RouterCore): Promise<void> {
  core.closing = true
  stopHeartbeat(core)
  core.sweeper.stop()
  const open = [...core.connections.values()]
  const reason = new Error('server shutting down')
  for (const conn of open) conn.release(reason)
  if (open.length === 0) {
    await core.delivery?.close()
    await core.adapter.close()
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
    }, core.config.shutdownGraceMs)
    const onClosed = (): void => {
      if (--left === 0) {
        clearTimeout(timer)
        clearTimeout(lastResort)
        resolve()
      }
    }
    if (core.config.shutdownGraceMs > 0) timer.unref()
    for (const conn of open) {
      if (conn.socket.readyState === CLOSED) {
        onClosed()
        continue
      }
      conn.socket.once('close', onClosed)
      closeConnection(core, conn, { code: CloseCode.GOING_AWAY, reason: 'server shutting down', level: false })
    }
  })
  await core.delivery?.close()
  await core.adapter.close()
}

/**
 * Shutdown, for a socket that was never adopted (resume, issue 12: its
 * claim was decided after shutdown began): 1001 like every connection, and
 * terminated if it has not closed after `shutdownGraceMs`, so that it
 * cannot hold the server's close.
 */
export function goAway (core: RouterCore, socket: WebSocket): void {
  if (socket.readyState === CLOSED) return
  const timer = setTimeout(() => socket.terminate(), core.config.shutdownGraceMs)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.close(CloseCode.GOING_AWAY, 'server shutting down')
  // A resuming socket is paused until its claim is decided: read the peer's close frame (and drop whatever came before it).
  socket.resume()
}
