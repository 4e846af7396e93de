/**
 * Baseline (3): Socket.IO 4, WebSocket transport only, acknowledged events.
 * `ping` acks `{serverTime}`; `user_message` acks the same reply as the other
 * servers after the same hand-written `typeof` check.
 */
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { control } from './control.js'
import { MAX_PAYLOAD_BYTES, userMessageReply, type UserMessage } from './shared.js'

type Ack = (reply: unknown) => void

function isUserMessage (payload: unknown): payload is UserMessage {
  if (payload === null || typeof payload !== 'object') return false
  const message = payload as Partial<UserMessage>
  return typeof message.room === 'string' && typeof message.text === 'string'
}

const httpServer = createServer()
const io = new Server(httpServer, {
  transports: ['websocket'],
  serveClient: false,
  maxHttpBufferSize: MAX_PAYLOAD_BYTES
})

io.on('connection', (socket) => {
  socket.on('ping', (_payload: unknown, ack: Ack) => {
    ack({ serverTime: Date.now() })
  })
  socket.on('user_message', (payload: unknown, ack: Ack) => {
    ack(isUserMessage(payload) ? userMessageReply(payload) : { error: 'VALIDATION_FAILED' })
  })
})

await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
const address = httpServer.address()
if (address === null || typeof address === 'string') throw new Error('unexpected address')

control('socketio', {
  port: address.port,
  connections: () => io.engine.clientsCount,
  close: () => new Promise<void>((resolve) => {
    io.close(() => resolve())
  })
})
