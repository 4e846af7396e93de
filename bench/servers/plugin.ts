/**
 * Targets (4) and (5): this project's plugin, `ping` → `pong` and the
 * TypeBox-validated `user_message` (see plugin-app.ts).
 *
 * The inbound rate limit is off here: its default bucket (100 frames/s,
 * burst 200 per connection) refuses a benchmark client by design. Target (6)
 * runs with it on.
 */
import { startPlugin } from './plugin-app.js'

await startPlugin('plugin', { rateLimit: false })
