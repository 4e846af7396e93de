import type { TSchema } from '@sinclair/typebox'
import type { WsSchema } from './schema.js'
import type { Contract } from './contracts.js'
import { builtinContract, ErrorFramePayload } from './builtin-contract.js'
import { CloseCode } from './errors.js'

/**
 * An AsyncAPI 3.0 document of one router, generated from its registry: a
 * channel for the route, one `receive` operation per registered type (its
 * reply, `ack` and `error` as the possible replies), one `send` operation
 * per server event (the built-ins' and the contract's), the error frame,
 * and the close codes as the `x-close-codes` extension. Payloads are the
 * TypeBox schemas of the registry, which are JSON Schema.
 */

export interface AsyncApiOptions {
  /** `info.title`. Default `fastify-ws-router API`. */
  title?: string
  /** `info.version` of the application's API. Default `1.0.0`. */
  version?: string
  description?: string
  /** The route's path. Default `/ws`. */
  path?: string
  /** `host[:port]` for `servers`; without it the document has no servers. */
  host?: string
  /** `ws` or `wss`. Default `wss`. */
  protocol?: 'ws' | 'wss'
  /** The app's contract: its events are documented as server events, its replies where a route has no `replySchema`. */
  contract?: Contract
}

type Json = Record<string, unknown>

/** What the document is built from: `app.wsRouter` (its `routes()` accessor). */
export interface RouteSource {
  routes: () => ReadonlyArray<{ readonly type: string, readonly replyType: string, readonly schema: WsSchema | undefined, readonly replySchema: WsSchema | undefined }>
}

/** The close codes a client may see, with what to do (docs/protocol.md#close-codes). */
const CLOSE_CODES: Record<number, string> = {
  [CloseCode.NORMAL]: 'after the client\'s own `disconnect`',
  [CloseCode.GOING_AWAY]: 'server shutting down, or idle timeout: reconnect with backoff',
  [CloseCode.POLICY_VIOLATION]: 'sustained flooding: reconnect after a long delay and send less',
  [CloseCode.MESSAGE_TOO_BIG]: 'a frame over maxPayloadBytes: send smaller frames',
  [CloseCode.INTERNAL_ERROR]: 'too many consecutive failed frames: fix the frames',
  [CloseCode.SERVICE_RESTART]: 'after a `reconnect` frame: reconnect after retryAfterMs',
  [CloseCode.TRY_AGAIN_LATER]: 'the client did not read fast enough: reconnect with backoff',
  [CloseCode.SESSION_TAKEN_OVER]: 'with resume on: a newer connection resumed this session; do not reconnect to take it back'
}

/**
 * Build the document. Call it after the routes are registered (after
 * `ready()`, or in an `onReady` hook).
 *
 * @example
 * app.get('/asyncapi.json', async () => asyncApiDocument(app.wsRouter, { title: 'Chat', version: '1.2.0', contract }))
 */
export function asyncApiDocument (router: RouteSource, options: AsyncApiOptions = {}): Json {
  const path = options.path ?? '/ws'
  const channelRef = { $ref: '#/channels/ws' }
  const messages: Json = {}
  const channelMessages: Json = {}
  const operations: Json = {}
  const addMessage = (key: string, name: string, payload: Json, description: string, withId: boolean): { $ref: string } => {
    messages[key] = { name, title: name, summary: description, payload: envelope(name, payload, withId) }
    channelMessages[key] = { $ref: `#/components/messages/${key}` }
    return { $ref: `#/channels/ws/messages/${key}` }
  }
  const ack = addMessage('ack', 'ack', jsonSchema(builtinContract.messages.stop_agent.reply), 'A frame whose handler returned nothing, or of an unregistered type', true)
  const error = addMessage('error', 'error', jsonSchema(ErrorFramePayload), 'The failure of a frame; `id` when the frame had a readable one', true)

  for (const route of router.routes()) {
    const key = safeKey(route.type)
    const sent = addMessage(`client.${key}`, route.type, route.schema === undefined ? {} : jsonSchema(route.schema), `Client frame "${route.type}"`, true)
    const replySchema = route.replySchema ?? replySchemaFromContracts(route.type, options.contract)
    const replies = [error]
    if (route.replyType !== 'ack') replies.unshift(addMessage(`reply.${key}`, route.replyType, replySchema === undefined ? {} : jsonSchema(replySchema), `Reply to "${route.type}"`, true))
    replies.push(ack)
    operations[`receive.${key}`] = {
      action: 'receive',
      channel: channelRef,
      summary: `The client sends "${route.type}"`,
      messages: [sent],
      reply: { channel: channelRef, messages: replies }
    }
  }

  const events: Record<string, TSchema> = { ...builtinContract.events, ...options.contract?.events }
  for (const [type, schema] of Object.entries(events)) {
    if (type === 'error') continue
    const key = safeKey(type)
    const ref = addMessage(`server.${key}`, type, jsonSchema(schema), `Server event "${type}"`, isRunEvent(type))
    operations[`send.${key}`] = { action: 'send', channel: channelRef, summary: `The server sends "${type}"`, messages: [ref] }
  }

  const document: Json = {
    asyncapi: '3.0.0',
    info: {
      title: options.title ?? 'fastify-ws-router API',
      version: options.version ?? '1.0.0',
      ...(options.description === undefined ? {} : { description: options.description })
    },
    defaultContentType: 'application/json',
    channels: {
      ws: {
        address: path,
        title: `WebSocket route ${path}`,
        description: 'Protocol v1 envelopes: { type, id?, payload? } from the client; { type, id?, payload?, timestamp } from the server. See docs/protocol.md.',
        messages: channelMessages,
        'x-close-codes': Object.entries(CLOSE_CODES).map(([code, meaning]) => ({ code: Number(code), meaning }))
      }
    },
    operations,
    components: { messages }
  }
  if (options.host !== undefined) {
    document.servers = { default: { host: options.host, protocol: options.protocol ?? 'wss', pathname: path } }
    ;(document.channels as Json).ws = { ...((document.channels as Json).ws as Json), servers: [{ $ref: '#/servers/default' }] }
  }
  return document
}

/** Agent run events answer a `start_agent` and carry its id. */
function isRunEvent (type: string): boolean {
  return type.startsWith('agent_') || type.startsWith('tool_')
}

function replySchemaFromContracts (type: string, contract: Contract | undefined): TSchema | undefined {
  return contract?.messages[type]?.reply ?? (builtinContract.messages as Contract['messages'])[type]?.reply
}

/** The envelope around a payload schema. */
function envelope (type: string, payload: Json, withId: boolean): Json {
  const properties: Json = {
    type: { type: 'string', const: type },
    payload
  }
  if (withId) properties.id = { oneOf: [{ type: 'string', minLength: 1, maxLength: 128 }, { type: 'integer' }] }
  return { type: 'object', required: ['type'], properties }
}

/**
 * A TypeBox schema as plain JSON Schema: its symbol-keyed markers dropped,
 * and TypeBox's non-standard `{ type: 'undefined' }` (an absent payload)
 * written as a schema nothing matches, so that `anyOf: [absent, object]`
 * keeps its meaning.
 */
function jsonSchema (schema: WsSchema): Json {
  return JSON.parse(JSON.stringify(schema), (_key, value: unknown) => {
    if (value !== null && typeof value === 'object' && (value as Json).type === 'undefined') return { not: {}, description: 'no payload' }
    return value
  }) as Json
}

/** AsyncAPI keys allow letters, digits, `.`, `-`, `_`. */
function safeKey (type: string): string {
  return type.replace(/[^A-Za-z0-9_-]/g, '_')
}
