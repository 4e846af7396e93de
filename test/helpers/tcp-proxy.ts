/**
 * A TCP proxy the test can cut: every byte between a client and the server
 * goes through it, and `cut()` destroys every connection at once and stops
 * accepting new ones, as a network that goes away does (both ends see the
 * TCP connection die: `1006`, no close handshake), until `restore()`.
 */
import { createServer, connect, type Server, type Socket } from 'node:net'

export interface TcpProxy {
  /** The proxy's port; connect here instead of to the server. */
  readonly port: number
  /** Destroy every connection and refuse new ones (the port is closed). */
  cut: () => Promise<void>
  /** Accept again on the same port. */
  restore: () => Promise<void>
  close: () => Promise<void>
}

export async function startTcpProxy (targetPort: number, host = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>()
  const track = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => { sockets.delete(socket) })
  }
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, host)
    track(client)
    track(upstream)
    // An error on either side ends both: the proxy carries no half-open pair.
    client.on('error', () => { upstream.destroy() })
    upstream.on('error', () => { client.destroy() })
    client.pipe(upstream)
    upstream.pipe(client)
  })
  const listen = async (port: number): Promise<number> => await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const address = server.address()
      resolve(typeof address === 'object' && address !== null ? address.port : 0)
    })
  })
  const stop = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    for (const socket of sockets) socket.destroy()
    await closed
  }
  const port = await listen(0)
  return {
    port,
    cut: stop,
    restore: async () => { await listen(port) },
    close: async () => { if (server.listening) await stop() }
  }
}
