import { Type } from '@sinclair/typebox'
import type { BuiltinHost } from '../builtin-host.js'

/** `connect` and `disconnect` need no payload; an empty object is accepted too. */
export const NoPayload = Type.Union([Type.Undefined(), Type.Object({})])

const DISCONNECT_ACK = Object.freeze({ status: 'disconnect_acknowledged' })

/**
 * `connect` → `connection_ack` `{ status: 'connected', connectionId, userId }`,
 * for clients that want an explicit handshake on top of `connection_established`.
 *
 * `disconnect` → `connection_ack` `{ status: 'disconnect_acknowledged' }`, then
 * the server closes with 1000. The close waits for the ack's write to settle,
 * so the client reads the ack before the close frame; a failed ack (already
 * counted and logged by the router) still closes.
 */
export function registerConnection (router: BuiltinHost): void {
  router.on('connect', { schema: NoPayload, replyType: 'connection_ack' }, (_payload, ctx) => ({
    status: 'connected',
    connectionId: ctx.connectionId,
    userId: ctx.userId
  }))
  router.on('disconnect', { schema: NoPayload, replyType: 'connection_ack' }, (_payload, ctx) => {
    const connectionId = ctx.connectionId
    ctx.reply(DISCONNECT_ACK).then(() => router.closeNormally(connectionId, 'disconnect requested'))
  })
}
