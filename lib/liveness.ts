import type { Connection } from './connection.js'
import type { RouterCore } from './core.js'
import { closeConnection } from './closing.js'
import { CloseCode } from './errors.js'
import { sendFrame } from './outbound.js'

/**
 * Liveness: one heartbeat timer per router (running while a connection is
 * open), one pass over every connection per tick. Each pass takes its time
 * as an argument, so tests run it with an injected clock.
 */

export function startHeartbeat (core: RouterCore): void {
  if (core.heartbeatTimer !== null) return
  core.heartbeatTimer = setInterval(heartbeat, core.config.heartbeatIntervalMs, core)
  core.heartbeatTimer.unref()
}

export function stopHeartbeat (core: RouterCore): void {
  if (core.heartbeatTimer !== null) {
    clearInterval(core.heartbeatTimer)
    core.heartbeatTimer = null
  }
}

function heartbeat (core: RouterCore): void {
  heartbeatTick(core, Date.now())
}

/**
 * One heartbeat pass over every connection at time `now`: close those whose
 * credentials expired, terminate the silent, close the idle, ask the
 * too-old to reconnect, ping the rest.
 */
export function heartbeatTick (core: RouterCore, now: number): void {
  const { livenessWindowMs, maxConnectionAgeMs, idleTimeoutMs } = core.config
  for (const conn of core.connections.values()) {
    if (!conn.isOpen) continue
    const expiresAt = conn.identity.expiresAt
    if (expiresAt !== undefined && now >= expiresAt) {
      closeConnection(core, conn, {
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
      closeConnection(core, conn, {
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
      closeConnection(core, conn, {
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
      if (!conn.retiring) retire(core, conn, 'max_connection_age', now)
      continue
    }
    conn.ping()
  }
}

/** Ask a client to reconnect (frame `reconnect`), then close with 1012. */
function retire (core: RouterCore, conn: Connection, reason: string, now: number): void {
  conn.retiring = true
  conn.log.info({ reason, ageMs: now - conn.openedAt, environment: core.config.environment }, 'asking websocket client to reconnect (1012)')
  const retryAfterMs = Math.floor(Math.random() * 1000)
  sendFrame(core, conn, 'reconnect', undefined, { reason, retryAfterMs }).then(() => {
    closeConnection(core, conn, { code: CloseCode.SERVICE_RESTART, reason, level: false })
  })
}
