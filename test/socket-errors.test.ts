import t from 'tap'
import { randomBytes } from 'node:crypto'
import { connect as tcpConnect, type Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import { wsRouter } from '../lib/index.js'
import { logSink, type LogLine } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

// Issue 9: socket-level protocol errors are handled in one place, whoever
// registered @fastify/websocket: counted by code, one `warn` line without a
// stack, `closedByCode` with the code the server sent.

interface Served { app: FastifyInstance, port: number, logs: LogLine[] }

async function serve (appRegistersWebsocket: boolean): Promise<Served> {
  const sink = logSink()
  const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
  // The example registers @fastify/websocket itself, with its default error handler.
  if (appRegistersWebsocket) await app.register(websocket)
  await app.register(wsRouter, { environment: 'test' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port, logs: sink.lines }
}

interface RawClient {
  socket: Socket
  /** Resolves with the close code of the first close frame the server sent. */
  closeCode: Promise<number | null>
}

/** A TCP client that speaks just enough WebSocket to send raw frames. */
async function rawClient (port: number): Promise<RawClient> {
  const socket = tcpConnect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write([
    'GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', ''
  ].join('\r\n'))
  let buffer = Buffer.alloc(0)
  let upgraded = false
  let resolveHandshake: () => void = () => {}
  const handshake = new Promise<void>((resolve) => { resolveHandshake = resolve })
  const closeCode = new Promise<number | null>((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n')
        if (end === -1) return
        upgraded = true
        buffer = buffer.subarray(end + 4)
        resolveHandshake()
      }
      // Server frames are unmasked; only short frames are expected here.
      while (buffer.length >= 2) {
        const opcode = (buffer[0] as number) & 0x0f
        let length = (buffer[1] as number) & 0x7f
        let offset = 2
        if (length === 126) { length = buffer.readUInt16BE(2); offset = 4 }
        if (buffer.length < offset + length) return
        if (opcode === 0x8) resolve(length >= 2 ? buffer.readUInt16BE(offset) : null)
        buffer = buffer.subarray(offset + length)
      }
    })
    socket.on('close', () => resolve(null))
    socket.on('error', () => {})
  })
  await handshake
  return { socket, closeCode }
}

/** One client frame: FIN set, masked unless told otherwise. */
function frame (opcode: number, payload: Buffer, masked = true): Buffer {
  const header: number[] = [0x80 | opcode]
  const maskBit = masked ? 0x80 : 0
  if (payload.length < 126) header.push(maskBit | payload.length)
  else if (payload.length < 65536) header.push(maskBit | 126, payload.length >> 8, payload.length & 0xff)
  else {
    header.push(maskBit | 127, 0, 0, 0, 0)
    header.push((payload.length >>> 24) & 0xff, (payload.length >>> 16) & 0xff, (payload.length >>> 8) & 0xff, payload.length & 0xff)
  }
  if (!masked) return Buffer.concat([Buffer.from(header), payload])
  const mask = randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i % 4] as number)
  return Buffer.concat([Buffer.from(header), mask, body])
}

const cases = [
  { name: 'invalid UTF-8', bytes: () => frame(0x1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), closeCode: 1007, wsCode: 'WS_ERR_INVALID_UTF8' },
  { name: 'an unmasked frame', bytes: () => frame(0x1, Buffer.from('{"type":"ping"}'), false), closeCode: 1002, wsCode: 'WS_ERR_EXPECTED_MASK' },
  { name: 'an oversize frame', bytes: () => frame(0x1, Buffer.alloc(70 * 1024, 0x20)), closeCode: 1009, wsCode: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' }
]

for (const appRegistersWebsocket of [false, true]) {
  const who = appRegistersWebsocket ? 'the app registered @fastify/websocket' : 'the plugin registered @fastify/websocket'
  t.test(`protocol errors, ${who}: close code sent, counted once, one warn line without a stack`, async (t) => {
    const served = await serve(appRegistersWebsocket)
    t.teardown(() => served.app.close())
    const router = served.app.wsRouter
    for (const c of cases) {
      const client = await rawClient(served.port)
      await waitFor(() => router.connectionCount === 1, 5000, 'the connection')
      client.socket.write(c.bytes())
      t.equal(await client.closeCode, c.closeCode, `${c.name}: the client reads close ${c.closeCode}`)
      client.socket.destroy()
      await waitFor(() => router.connectionCount === 0, 5000, 'the connection to go')
      const stats = router.getStats()
      t.equal(stats.connections.closedByCode[String(c.closeCode)], 1, `${c.name}: closedByCode counts ${c.closeCode}, the code the server sent`)
    }
    const stats = router.getStats()
    t.equal(stats.connections.closedByCode['1006'], undefined, 'never counted as 1006')
    // ws raises these while reading; when the app's ws server allows larger frames, the router itself closes with 1009.
    const expected: Record<string, number> = appRegistersWebsocket
      ? { WS_ERR_INVALID_UTF8: 1, WS_ERR_EXPECTED_MASK: 1, MESSAGE_TOO_BIG: 1 }
      : { WS_ERR_INVALID_UTF8: 1, WS_ERR_EXPECTED_MASK: 1, WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1 }
    t.same(stats.protocolErrors, expected, 'each protocol error counted once, by code')
    const lines = served.logs.filter((line) => line.msg === 'websocket protocol error')
    t.equal(lines.length, 3, 'one log line per protocol error')
    t.ok(lines.every((line) => line.level === 40), 'at warn')
    t.ok(lines.every((line) => JSON.stringify(line).includes('"stack"') === false), 'without a stack trace')
    t.same(lines.map((line) => line.closeCode), [1007, 1002, 1009])
    t.same(served.logs.filter((line) => line.level >= 50), [], 'nothing at error level')
  })

  t.test(`a ping flood, ${who}: the termination is counted and logged once`, async (t) => {
    const served = await serve(appRegistersWebsocket)
    t.teardown(() => served.app.close())
    const router = served.app.wsRouter
    const client = await rawClient(served.port)
    await waitFor(() => router.connectionCount === 1, 5000, 'the connection')
    // Never read: the server's pongs pile up until ws terminates the flooder.
    client.socket.pause()
    const ping = frame(0x9, Buffer.alloc(125, 0x61))
    const chunk = Buffer.concat(Array.from({ length: 1000 }, () => ping))
    for (let i = 0; i < 500 && router.connectionCount === 1 && !client.socket.destroyed; i++) {
      if (!client.socket.write(chunk)) await new Promise((resolve) => { client.socket.once('drain', resolve); setTimeout(resolve, 50) })
    }
    await waitFor(() => router.connectionCount === 0, 10_000, 'the flooder to be terminated')
    client.socket.destroy()
    const stats = router.getStats()
    t.equal(stats.protocolErrors.PING_FLOOD, 1)
    const lines = served.logs.filter((line) => line.msg === 'websocket protocol error')
    t.equal(lines.length, 1)
    t.match(lines[0], { level: 40, code: 'PING_FLOOD' })
    t.same(served.logs.filter((line) => line.level >= 50), [], 'nothing at error level')
  })
}
