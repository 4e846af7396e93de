/** Settings every benchmark server shares, so that they differ only in what they are. */

/** Largest inbound frame: the plugin's default `maxPayloadBytes`, applied to every server. */
export const MAX_PAYLOAD_BYTES = 64 * 1024

/**
 * Fastify servers (hand-written router and plugin) log through a real pino
 * logger at `warn`: child loggers are real objects (as in production) but a
 * healthy run writes nothing.
 */
export const FASTIFY_OPTIONS = { logger: { level: 'warn' } } as const

/** The `user_message` payload the validated targets accept. */
export interface UserMessage {
  room: string
  text: string
}

/** Reply to a `user_message`: the same for every server. */
export function userMessageReply (message: UserMessage): { room: string, length: number } {
  return { room: message.room, length: message.text.length }
}
