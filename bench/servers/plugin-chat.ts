/**
 * Target (5b), issue 9: this project's plugin with its chat built-ins as
 * shipped. Each benchmark connection joins a room of its own, then sends
 * `user_message` to it: the membership check, the fan-out to the room (no
 * other member) and the `message_ack` with the fan-out's outcome.
 *
 * The inbound rate limit is off, as for target (5). `maxMessageChars` is
 * raised from its default 4 000 so that the 4 KiB scenarios' text passes
 * (otherwise every frame is refused and the connection closed with 1008).
 */
import { startPlugin } from './plugin-app.js'

await startPlugin('plugin-chat', { rateLimit: false, maxMessageChars: 8192 }, true)
