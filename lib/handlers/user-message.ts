import { randomUUID } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { UserMessage } from '../agent-types.js'
import type { BuiltinHost, FanoutResult } from '../builtin-host.js'
import { RoomPayload, requireMember } from './membership.js'

/** What the sender learns about its message's fan-out. */
export interface MessageAck {
  messageId: string
  room: string
  sentAt: number
  /**
   * Connections of this instance that accepted it when the ack was built:
   * `written + buffered` (other instances: the `remote*` fields).
   */
  deliveredTo: number
  /** Connections of this instance it could not reach (gone, too slow: `BACKPRESSURE`, then closed with 1013). */
  failed: number
  /** Of `deliveredTo`: connections whose socket took the whole frame at once. */
  written: number
  /** Of `deliveredTo`: connections that queued it in their send buffer behind earlier frames. */
  buffered: number
  /** Connections that skipped it as droppable; always 0 for a user message, which must be delivered. */
  dropped: number
  /** Other instances reached, when the adapter spans several. */
  remoteInstances?: number
  /** Why publishing to other instances failed or is incomplete (`BROKER_UNAVAILABLE`, `RECEIPT_TIMEOUT`). */
  remoteError?: string
  /** With delivery receipts: connections on other instances that received it. */
  remoteDelivered?: number
  /** With delivery receipts: connections on other instances it could not reach. */
  remoteFailed?: number
  /** With delivery receipts: instances that took the frame but did not report in time. */
  remoteTimedOut?: number
}

export function userMessageSchema (maxMessageChars: number) {
  return Type.Object({
    room: RoomPayload.properties.room,
    text: Type.String({ minLength: 1, maxLength: maxMessageChars }),
    clientMessageId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 }))
  })
}

/**
 * `user_message` `{ room, text, clientMessageId? }` from a member of the
 * room. `onUserMessage` may persist or enrich it (return the message) or
 * refuse it (throw a `WsRouterError`: its code is the error frame's); `room`
 * and `userId` stay those checked here, so a hook cannot make a message
 * speak for someone else or elsewhere. The room's other connections (the
 * sender's other tabs included) get `message`; the sender gets `message_ack`
 * with the fan-out's outcome, counted, not assumed.
 */
export function registerUserMessage (router: BuiltinHost): void {
  const onUserMessage = router.config.onUserMessage
  router.on('user_message', { schema: userMessageSchema(router.config.maxMessageChars), replyType: 'message_ack' }, async (payload, ctx): Promise<MessageAck> => {
    const room = payload.room
    requireMember(router, ctx.connectionId, room)
    let message: UserMessage = { messageId: randomUUID(), room, userId: ctx.userId, text: payload.text, sentAt: Date.now() }
    if (payload.clientMessageId !== undefined) message.clientMessageId = payload.clientMessageId
    if (onUserMessage !== undefined) {
      const kept = await onUserMessage(ctx, message)
      if (kept !== undefined) {
        if (kept === null || typeof kept !== 'object') throw new TypeError('onUserMessage must return the message object or nothing')
        message = { ...kept, room, userId: ctx.userId }
      }
    }
    const outcome = await router.sendToRoom(room, 'message', message, { except: ctx.connectionId })
    // The fan-out logged this already; the sender must not read it as "delivered to nobody".
    if (outcome.reason === 'SERIALIZE') throw new Error('The message could not be serialised for delivery')
    return messageAck(message, outcome)
  })
}

function messageAck (message: UserMessage, outcome: FanoutResult): MessageAck {
  const ack: MessageAck = {
    messageId: message.messageId,
    room: message.room,
    sentAt: message.sentAt,
    deliveredTo: outcome.delivered,
    failed: outcome.failed.length,
    written: outcome.written,
    buffered: outcome.buffered,
    dropped: outcome.dropped
  }
  const remote = outcome.remote
  if (remote !== null) {
    // Local and remote counts stay apart: without receipts, remote delivery is unknown, not zero.
    ack.remoteInstances = remote.instances
    if (remote.error !== undefined) ack.remoteError = remote.error
    if (remote.delivered !== undefined) ack.remoteDelivered = remote.delivered
    if (remote.failed !== undefined) ack.remoteFailed = remote.failed.length
    if (remote.timedOut !== undefined) ack.remoteTimedOut = remote.timedOut
  }
  return ack
}
