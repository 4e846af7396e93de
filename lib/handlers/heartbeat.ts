import type { BuiltinHost } from '../builtin-host.js'

/**
 * Application-level heartbeats, for clients that cannot see protocol pings
 * (browsers): `heartbeat` → `heartbeat_ack`. A client's own `pong` and
 * `heartbeat_ack` frames need no reply (an `ack` when they carry an id, like
 * every frame with an id); the per-type counters count them.
 */
export function registerHeartbeat (router: BuiltinHost): void {
  router.on('heartbeat', { replyType: 'heartbeat_ack' }, () => ({ status: 'healthy', serverTime: Date.now() }))
  router.on('pong', {}, noop)
  router.on('heartbeat_ack', {}, noop)
}

function noop (): void {}
