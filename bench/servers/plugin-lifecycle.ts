/**
 * Target (6): the plugin of target (5) with the connection lifecycle
 * features on, so that their per-frame cost shows:
 * - heartbeat every second (liveness window 3 s) instead of the preset's 25 s;
 * - the inbound token bucket, sized so that the benchmark never empties it
 *   (a refused frame would be a different code path, not a cost);
 * - the idle timeout (60 s, never reached);
 * - the connection registry (users and rooms adapter), which is always on.
 * Options this version of the plugin does not know yet are reported by the
 * harness as not applied.
 */
import { startPlugin } from './plugin-app.js'

await startPlugin('plugin-lifecycle', {
  heartbeatIntervalMs: 1000,
  livenessWindowMs: 3000,
  rateLimit: { messagesPerSecond: 1_000_000, burst: 1_000_000 },
  idleTimeoutMs: 60_000
})
