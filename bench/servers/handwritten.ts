/**
 * Baseline (2): the router a user would write by hand on @fastify/websocket:
 * `JSON.parse`, a `switch` on `type`, `JSON.stringify` of the reply with the
 * request's id. Its replies have the plugin's exact shape
 * (`{type, id, payload, timestamp}`), so the two send the same bytes.
 * `user_message` gets a hand-written `typeof` check in place of a schema.
 */
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import type { RawData, WebSocket } from 'ws'
import { control } from './control.js'
import { FASTIFY_OPTIONS, MAX_PAYLOAD_BYTES, userMessageReply, type UserMessage } from './shared.js'

interface Frame {
  type?: unknown
  id?: unknown
  payload?: unknown
}

function isUserMessage (payload: unknown): payload is UserMessage {
  if (payload === null || typeof payload !== 'object') return false
  const message = payload as Partial<UserMessage>
  return typeof message.room === 'string' && typeof message.text === 'string'
}

function sendError (socket: WebSocket, id: unknown, code: string): void {
  socket.send(JSON.stringify({ type: 'error', id, payload: { code }, timestamp: Date.now() }))
}

function onMessage (socket: WebSocket, data: RawData, isBinary: boolean): void {
  if (isBinary) return sendError(socket, undefined, 'BINARY_NOT_SUPPORTED')
  let frame: Frame
  try {
    frame = JSON.parse((data as Buffer).toString()) as Frame
  } catch {
    return sendError(socket, undefined, 'INVALID_JSON')
  }
  if (frame === null || typeof frame !== 'object') return sendError(socket, undefined, 'INVALID_MESSAGE')
  switch (frame.type) {
    case 'ping':
      socket.send(JSON.stringify({ type: 'pong', id: frame.id, payload: { serverTime: Date.now() }, timestamp: Date.now() }))
      return
    case 'user_message':
      if (!isUserMessage(frame.payload)) return sendError(socket, frame.id, 'VALIDATION_FAILED')
      socket.send(JSON.stringify({ type: 'user_message_result', id: frame.id, payload: userMessageReply(frame.payload), timestamp: Date.now() }))
      return
    default:
      sendError(socket, frame.id, 'UNKNOWN_TYPE')
  }
}

const app = Fastify(FASTIFY_OPTIONS)
await app.register(websocket, { options: { maxPayload: MAX_PAYLOAD_BYTES } })
app.get('/ws', { websocket: true }, (socket) => {
  socket.on('message', (data, isBinary) => onMessage(socket, data, isBinary))
})
await app.listen({ host: '127.0.0.1', port: 0 })
const address = app.server.address()
if (address === null || typeof address === 'string') throw new Error('unexpected address')

control('handwritten', {
  port: address.port,
  connections: () => app.websocketServer.clients.size,
  close: () => app.close()
})
