/**
 * The anchor for bench/cross-instance.ts: one Socket.IO 4 server with
 * `@socket.io/redis-adapter` (ioredis clients), WebSocket transport only.
 * `join` (acknowledged) joins a room; `say` emits `heard` to the room,
 * excluding the sender (`socket.to(room).emit`). Prints `{"port": N}`.
 */
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'

const redisUrl = process.env.REDIS_URL
if (redisUrl === undefined || redisUrl === '') throw new Error('REDIS_URL is required')
const pubClient = new Redis(redisUrl)
const subClient = pubClient.duplicate()

const httpServer = createServer()
const io = new Server(httpServer, { transports: ['websocket'], serveClient: false })
io.adapter(createAdapter(pubClient, subClient))

interface Say { room: string, seq: number, t: number }

io.on('connection', (socket) => {
  socket.on('join', (room: unknown, ack: unknown) => {
    if (typeof room !== 'string') return
    Promise.resolve(socket.join(room)).then(() => { if (typeof ack === 'function') ack(true) }, () => {})
  })
  socket.on('say', (message: Say) => {
    if (message === null || typeof message !== 'object' || typeof message.room !== 'string') return
    socket.to(message.room).emit('heard', message)
  })
})

await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve))
const address = httpServer.address()
process.stdout.write(JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 }) + '\n')
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    io.close(() => {
      pubClient.disconnect()
      subClient.disconnect()
      process.exit(0)
    })
    setTimeout(() => process.exit(0), 2000).unref()
  })
}
