/**
 * `fastify-ws-router/client`: the browser and Node client of protocol v1.
 * No Node built-ins, no TypeBox at run time (contracts are imported as
 * types); client-side validation is a separate entry,
 * `fastify-ws-router/client/validate`.
 */
export { createClient, type Client, type ClientOptions, type ClientState, type StateInfo, type RejoinFailure, type SendOutcome } from './client.js'
export { ClientError, ClientErrorCode, isClientError } from './errors.js'
export { AgentRun } from './agent.js'
export type { ResumedInfo, ResumeFailedInfo, ResumeFailedReason, SeqRange } from './resume.js'
export { DEFAULT_BACKOFF, backoffDelay, type BackoffOptions } from './backoff.js'
export type {
  AgentEvent, Clock, ClientValidator, EventType, Frame, PayloadArgs, RequestOptions, RequestPayload, RequestReply, RequestType,
  ServerEventPayload, WebSocketConstructor, WebSocketLike
} from './types.js'
export type { AnyContract, Contract, MessageSpec, MessagePayload, MessageReply, EventPayload } from '../contracts.js'
