import WebSocket, { WebSocketServer } from 'ws'

/**
 * A bare `ws` server whose test scripts what each connection gets: the
 * client's side of the protocol is tested against exact frames and close
 * codes, with no router behind them.
 */
export interface ScriptedServer {
  url: string
  connections: number
  /** The query of each connection's upgrade request, in order. */
  queries: URLSearchParams[]
  /** What the server does with each new connection (after `connection_established` when the server sends it). */
  onConnection: (socket: WebSocket, n: number, query: URLSearchParams) => void
}

/** `established`: send a default `connection_established` (connection id `c<n>`) to each connection first. */
export async function scriptedServer (t: { teardown: (fn: () => unknown) => void }, established = true): Promise<ScriptedServer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await new Promise((resolve) => wss.once('listening', resolve))
  t.teardown(() => new Promise((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(resolve) }))
  const address = wss.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const scripted: ScriptedServer = { url: `ws://127.0.0.1:${address.port}`, connections: 0, queries: [], onConnection: () => {} }
  wss.on('connection', (socket, request) => {
    scripted.connections++
    const query = new URL(request.url ?? '/', 'http://localhost').searchParams
    scripted.queries.push(query)
    if (established) socket.send(JSON.stringify({ type: 'connection_established', payload: { connectionId: `c${scripted.connections}`, userId: 'u', protocolVersion: 1, heartbeatIntervalMs: 30_000, maxPayloadBytes: 65536 }, timestamp: 0 }))
    scripted.onConnection(socket, scripted.connections, query)
  })
  return scripted
}
