import { Type } from '@sinclair/typebox'
import type { BuiltinHost } from '../builtin-host.js'

/** Longest client text written to a log line, in UTF-8 bytes. */
export const MAX_LOGGED_BYTES = 1024

export const ClientErrorPayload = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 64 }),
  message: Type.String(),
  context: Type.Optional(Type.Unknown())
})

/**
 * `client_error` `{ code, message, context? }`: a client reports its own
 * failure (a render error, a failed upload). Counted by code in the stats
 * (`clientErrors`, bounded), logged once at warn level on the connection's
 * logger, and acked when it has an id. The client chooses every byte of it,
 * so the message and the context are cut to 1 KiB before they reach the log.
 */
export function registerClientError (router: BuiltinHost): void {
  const environment = router.config.environment
  router.on('client_error', { schema: ClientErrorPayload }, (payload, ctx) => {
    router.countClientError(payload.code)
    const line: Record<string, unknown> = {
      clientCode: payload.code,
      clientMessage: cutToBytes(payload.message, MAX_LOGGED_BYTES),
      messageId: ctx.id,
      environment
    }
    if (payload.context !== undefined) line.context = cutToBytes(JSON.stringify(payload.context), MAX_LOGGED_BYTES)
    ctx.log.warn(line, 'client reported an error')
  })
}

/** The longest prefix of `text` within `maxBytes` of UTF-8, never splitting a character. */
export function cutToBytes (text: string, maxBytes: number): string {
  // Three bytes per UTF-16 unit at most: short texts need no counting.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text
  // encodeInto writes whole characters only and reports how many units it read.
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(maxBytes))
  return text.slice(0, read)
}
