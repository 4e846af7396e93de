import type { FastifyBaseLogger } from 'fastify'

/**
 * The contract between the router and an agent runner (an LLM loop, a
 * workflow): an async generator that yields steps and returns the final
 * response. The router turns each step into a frame for the client.
 */

export type AgentStep =
  | { readonly type: 'thinking', readonly reasoning: string }
  | { readonly type: 'tool_start', readonly toolName: string, readonly parameters?: unknown }
  | { readonly type: 'tool_end', readonly toolName: string, readonly results?: unknown }
  | { readonly type: 'progress', readonly [field: string]: unknown }

export interface AgentRunContext {
  readonly runId: string
  readonly userId: string
  readonly connectionId: string
  readonly room: string | undefined
  /** Fires on `stop_agent`, on disconnect and on shutdown: stop work, release resources. */
  readonly signal: AbortSignal
  readonly log: FastifyBaseLogger
}

/**
 * An agent: `(input, ctx) => AsyncGenerator<AgentStep, finalResponse>`.
 *
 * @example
 * async function * agent (input, ctx) {
 *   yield { type: 'thinking', reasoning: 'Looking it up' }
 *   return { text: 'done' }
 * }
 */
export type AgentRunner = (input: string, ctx: AgentRunContext) => AsyncGenerator<AgentStep, unknown, undefined>

/** A chat message as the user_message handler builds it, before fan-out. */
export interface UserMessage {
  messageId: string
  room: string
  userId: string
  text: string
  sentAt: number
  clientMessageId?: string
  /** Anything `onUserMessage` adds is sent along. */
  [field: string]: unknown
}
