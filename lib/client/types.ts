import type { BuiltinContract } from '../builtin-contract.js'
import type { AnyContract, Contract, EventPayload, MessagePayload, MessageReply } from '../contracts.js'

/**
 * Types shared by the client and the test client: frames, the clock, the
 * WebSocket the client needs, and the contract merged with the built-ins.
 * Types only: nothing here exists at run time.
 */

/** A server frame as the client reads it. */
export interface Frame {
  readonly type: string
  readonly id?: string | number
  /** Must-deliver frames of a resumable session: 1, 2, 3, … per session (docs/delivery.md). */
  readonly seq?: number
  readonly payload?: unknown
  readonly timestamp?: number
}

/** Timers and time, injectable so tests drive time by hand. */
export interface Clock {
  now: () => number
  setTimeout: (callback: () => void, ms: number) => unknown
  clearTimeout: (handle: unknown) => void
}

/** The part of the WHATWG WebSocket the client uses (browsers, Node ≥ 22, and `ws`). */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  onmessage: ((event: { data: unknown }) => void) | null
  onerror: ((event: unknown) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
}

/**
 * A WebSocket class: the global one, or `ws`. Its instances are used through
 * `WebSocketLike`; the instance type is left open so that classes whose
 * event types are richer (`ws`, the DOM's) fit without a cast.
 */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object

/** Per-request options. */
export interface RequestOptions {
  /** Reject with `TIMEOUT` after this long. Default: the client's `requestTimeoutMs`. */
  timeoutMs?: number
  /** Reject with `ABORTED` when it fires; a late reply is ignored. */
  signal?: AbortSignal
  /**
   * Safe to run twice: sent again after a reconnect instead of failing with
   * `DISCONNECTED`. Default false.
   */
  idempotent?: boolean
}

/** Payload then options; the payload may be left out when the type has none. */
export type PayloadArgs<P> = undefined extends P
  ? [payload?: P, options?: RequestOptions]
  : [payload: P, options?: RequestOptions]

type Builtins = BuiltinContract

/** Every message type the client may send: the contract's and the built-ins (the contract's own win on a clash). */
export type RequestType<C extends Contract> = (keyof C['messages'] | keyof Builtins['messages']) & string
/** Every server event the client may listen to. */
export type EventType<C extends Contract> = (keyof C['events'] | keyof Builtins['events']) & string

/** `true` when the contract itself declares `K` (an untyped contract declares nothing). */
type Declares<Table, K> = string extends keyof Table ? false : K extends keyof Table ? true : false

export type RequestPayload<C extends Contract, K extends RequestType<C>> =
  Declares<C['messages'], K> extends true ? MessagePayload<C, K> : K extends keyof Builtins['messages'] ? MessagePayload<Builtins, K> : unknown
export type RequestReply<C extends Contract, K extends RequestType<C>> =
  Declares<C['messages'], K> extends true ? MessageReply<C, K> : K extends keyof Builtins['messages'] ? MessageReply<Builtins, K> : unknown
export type ServerEventPayload<C extends Contract, K extends EventType<C>> =
  Declares<C['events'], K> extends true ? EventPayload<C, K & keyof C['events']> : K extends keyof Builtins['events'] ? EventPayload<Builtins, K> : unknown

/** One event of an agent run, as `startAgent()` yields it. */
export type AgentEvent = {
  [K in 'agent_started' | 'agent_thinking' | 'tool_executing' | 'tool_completed' | 'agent_progress' | 'agent_error' | 'agent_completed']:
  { readonly type: K, readonly payload: EventPayload<BuiltinContract, K> }
}['agent_started' | 'agent_thinking' | 'tool_executing' | 'tool_completed' | 'agent_progress' | 'agent_error' | 'agent_completed']

/**
 * Client-side validation: returns a message when `value` does not fit, or
 * `undefined`. `kind` says what is checked: an outgoing payload, the reply
 * of a request of `type`, or a server event of `type`.
 */
export type ClientValidator = (kind: 'payload' | 'reply' | 'event', type: string, value: unknown) => string | undefined

export type { AnyContract, Contract }
