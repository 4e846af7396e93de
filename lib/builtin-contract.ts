import { Type } from '@sinclair/typebox'
import { defineContract } from './contracts.js'

/**
 * The contract of the built-in types (docs/protocol.md#built-in-types):
 * what a client sends, what it gets back, and the server's own events. The
 * server's handlers check payloads with their own schemas; this contract
 * types the client and describes the replies and events in the AsyncAPI
 * document. A client imports it as a type only.
 */

const Room = Type.String({ minLength: 1, maxLength: 128 })
const RoomPayload = Type.Object({ room: Room })
// Absent, or an object whose fields are ignored (the server's own schema of connect/disconnect).
const NoPayload = Type.Union([Type.Undefined(), Type.Object({})])
const RunId = Type.String({ minLength: 1, maxLength: 64 })

/** `ack`: the answer to a frame whose handler returned nothing, or of an unregistered type. */
export const AckPayload = Type.Object({ receivedType: Type.String(), handled: Type.Boolean() })

/** The payload of every `error` frame (docs/protocol.md#error-frames). */
export const ErrorFramePayload = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Unknown()),
  ref: Type.Optional(Type.String())
})

const AgentEvents = {
  agent_started: Type.Object({ runId: Type.String(), userId: Type.String(), agentName: Type.String(), room: Type.Optional(Room) }),
  agent_thinking: Type.Object({ runId: Type.String(), reasoning: Type.String() }),
  tool_executing: Type.Object({ runId: Type.String(), toolName: Type.String(), parameters: Type.Unknown() }),
  tool_completed: Type.Object({ runId: Type.String(), toolName: Type.String(), results: Type.Unknown(), durationMs: Type.Union([Type.Number(), Type.Null()]) }),
  agent_progress: Type.Object({ runId: Type.String() }, { additionalProperties: true }),
  agent_error: Type.Object({ runId: Type.String(), code: Type.String(), message: Type.String() }),
  agent_completed: Type.Object({
    runId: Type.String(),
    status: Type.Union([Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')]),
    finalResponse: Type.Optional(Type.Unknown()),
    error: Type.Optional(Type.Unknown())
  })
}

export const builtinContract = defineContract({
  messages: {
    ping: { payload: Type.Optional(Type.Unknown()), reply: Type.Object({ serverTime: Type.Number() }), replyType: 'pong' },
    heartbeat: { payload: Type.Optional(Type.Unknown()), reply: Type.Object({ status: Type.Literal('healthy'), serverTime: Type.Number() }), replyType: 'heartbeat_ack' },
    connect: { payload: NoPayload, reply: Type.Object({ status: Type.Literal('connected'), connectionId: Type.String(), userId: Type.String() }), replyType: 'connection_ack' },
    disconnect: { payload: NoPayload, reply: Type.Object({ status: Type.Literal('disconnect_acknowledged') }), replyType: 'connection_ack' },
    join: { payload: RoomPayload, reply: RoomPayload, replyType: 'joined' },
    leave: { payload: RoomPayload, reply: RoomPayload, replyType: 'left' },
    typing_started: { payload: RoomPayload, reply: AckPayload, replyType: 'ack' },
    typing_stopped: { payload: RoomPayload, reply: AckPayload, replyType: 'ack' },
    user_message: {
      payload: Type.Object({ room: Room, text: Type.String({ minLength: 1 }), clientMessageId: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })) }),
      reply: Type.Object({
        messageId: Type.String(),
        room: Type.String(),
        sentAt: Type.Number(),
        deliveredTo: Type.Integer(),
        failed: Type.Integer(),
        remoteInstances: Type.Optional(Type.Integer()),
        remoteError: Type.Optional(Type.String()),
        remoteDelivered: Type.Optional(Type.Integer()),
        remoteFailed: Type.Optional(Type.Integer()),
        remoteTimedOut: Type.Optional(Type.Integer())
      }),
      replyType: 'message_ack'
    },
    start_agent: { payload: Type.Object({ input: Type.String({ minLength: 1 }), room: Type.Optional(Room) }), reply: AgentEvents.agent_started, replyType: 'agent_started' },
    stop_agent: { payload: Type.Object({ runId: RunId }), reply: AckPayload, replyType: 'ack' },
    client_error: { payload: Type.Object({ code: Type.String({ minLength: 1, maxLength: 64 }), message: Type.String(), context: Type.Optional(Type.Unknown()) }), reply: AckPayload, replyType: 'ack' }
  },
  events: {
    connection_established: Type.Object({
      connectionId: Type.String(),
      userId: Type.String(),
      protocolVersion: Type.Literal(1),
      heartbeatIntervalMs: Type.Integer(),
      maxPayloadBytes: Type.Integer()
    }),
    error: ErrorFramePayload,
    reconnect: Type.Object({ reason: Type.String(), retryAfterMs: Type.Integer({ minimum: 0 }) }),
    message: Type.Object({
      messageId: Type.String(),
      room: Type.String(),
      userId: Type.String(),
      text: Type.String(),
      sentAt: Type.Number(),
      clientMessageId: Type.Optional(Type.String())
    }, { additionalProperties: true }),
    typing: Type.Object({ room: Type.String(), userId: Type.String(), typing: Type.Boolean() }),
    ...AgentEvents
  }
})

export type BuiltinContract = typeof builtinContract

/** The agent run events, in the order a run may send them. */
export const AGENT_EVENT_TYPES = Object.keys(AgentEvents) as Array<keyof typeof AgentEvents>
