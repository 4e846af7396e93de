import net from 'node:net'
import { randomBytes } from 'node:crypto'

/**
 * A raw TCP peer that completes the WebSocket upgrade on `path`, then never
 * reads again and never answers the close handshake: the worst a client can
 * do to a graceful shutdown.
 */
export async function stalledPeer (port: number, path = '/ws?user=stalled'): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  socket.write([
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    '', ''
  ].join('\r\n'))
  await new Promise<void>((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => {
      const status = chunk.toString('latin1').split('\r\n')[0] ?? ''
      if (status.startsWith('HTTP/1.1 101')) resolve()
      else reject(new Error(`no upgrade: ${status}`))
    })
  })
  // From here on nothing is read: the close frame stays unread, never answered.
  socket.pause()
  return socket
}
