import type { Static, TSchema } from '@sinclair/typebox'

/**
 * Message contracts shared by server and client: each message type is
 * declared once, with TypeBox schemas of its payload and reply, and each
 * server event with the schema of its payload. The server registers its
 * handlers from the contract (`routeOptions`), the client takes the
 * contract's type (`createClient<typeof contract>`) with a type-only import,
 * so a browser bundle carries no TypeBox unless it validates.
 *
 * This module imports TypeBox as types only: it is safe for the client.
 */

/** One client message type: the schemas of its payload and of its reply. */
export interface MessageSpec {
  /** Schema of the payload; a frame that fails it gets `VALIDATION_FAILED`. */
  readonly payload?: TSchema
  /** Schema of the reply's payload. */
  readonly reply?: TSchema
  /** Type of the reply frame, when it is not `<type>_result` (`join` → `joined`). */
  readonly replyType?: string
}

/** Message types and server events of one route. */
export interface Contract {
  readonly messages: Readonly<Record<string, MessageSpec>>
  readonly events: Readonly<Record<string, TSchema>>
}

/**
 * Declare a contract. It returns its argument, typed, with `events`
 * defaulted to `{}`.
 *
 * @example
 * export const contract = defineContract({
 *   messages: { echo: { payload: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) } },
 *   events: { 'chat.message': Type.Object({ text: Type.String() }) }
 * })
 */
export function defineContract<
  const Messages extends Record<string, MessageSpec>,
  const Events extends Record<string, TSchema> = Record<never, TSchema>
> (contract: { messages: Messages, events?: Events }): { readonly messages: Messages, readonly events: Events } {
  return Object.freeze({ messages: contract.messages, events: (contract.events ?? {}) as Events })
}

/** The options of `app.wsRouter.on()` for one type of a contract. */
export interface ContractRouteOptions<P extends TSchema | undefined, R extends TSchema | undefined> {
  schema?: P
  replySchema?: R
  replyType?: string
}

type SchemaOf<Spec, Key extends 'payload' | 'reply'> = Spec extends { readonly [K in Key]: infer S extends TSchema } ? S : undefined

/**
 * The route options (`schema`, `replySchema`, `replyType`) of one type of
 * a contract, so the handler's payload and reply are inferred from it.
 *
 * @example
 * app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => ({ text: payload.text }))
 */
export function routeOptions<C extends Contract, K extends keyof C['messages'] & string> (
  contract: C,
  type: K
): ContractRouteOptions<SchemaOf<C['messages'][K], 'payload'>, SchemaOf<C['messages'][K], 'reply'>> {
  const spec = contract.messages[type]
  if (spec === undefined) throw new TypeError(`Contract has no message type "${type}"`)
  const options: ContractRouteOptions<TSchema | undefined, TSchema | undefined> = {}
  if (spec.payload !== undefined) options.schema = spec.payload
  if (spec.reply !== undefined) options.replySchema = spec.reply
  if (spec.replyType !== undefined) options.replyType = spec.replyType
  return options as ContractRouteOptions<SchemaOf<C['messages'][K], 'payload'>, SchemaOf<C['messages'][K], 'reply'>>
}

/** The payload type of a client message type: `unknown` without a schema. */
export type MessagePayload<C extends Contract, K extends keyof C['messages']> =
  C['messages'][K] extends { readonly payload: infer S extends TSchema } ? Static<S> : unknown

/** The reply payload type of a client message type: `unknown` without a schema. */
export type MessageReply<C extends Contract, K extends keyof C['messages']> =
  C['messages'][K] extends { readonly reply: infer S extends TSchema } ? Static<S> : unknown

/** The payload type of a server event. */
export type EventPayload<C extends Contract, K extends keyof C['events']> =
  C['events'][K] extends TSchema ? Static<C['events'][K]> : unknown

/** A contract that allows every type, with unknown payloads: the default of an untyped client. */
export interface AnyContract extends Contract {
  readonly messages: Record<string, { readonly payload?: undefined, readonly reply?: undefined }>
  readonly events: Record<string, TSchema>
}
