/**
 * Baseline (1), the floor: a bare `ws` server that echoes every frame back
 * unchanged. No parsing, no routing: what remains is the cost of ws itself.
 */
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { control } from './control.js'
import { MAX_PAYLOAD_BYTES } from './shared.js'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX_PAYLOAD_BYTES })

function echo (this: WebSocket, data: RawData, isBinary: boolean): void {
  this.send(data as Buffer, { binary: isBinary })
}

wss.on('connection', (socket) => {
  socket.on('message', echo)
  socket.on('error', () => {})
})

await new Promise<void>((resolve) => wss.once('listening', resolve))
const address = wss.address()
if (address === null || typeof address === 'string') throw new Error('unexpected address')

control('raw-ws', {
  port: address.port,
  connections: () => wss.clients.size,
  close: () => new Promise<void>((resolve) => {
    for (const client of wss.clients) client.terminate()
    wss.close(() => resolve())
  })
})
