import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { readFileSync } from 'node:fs'
import Fastify, { type FastifyInstance } from 'fastify'
import { wsRouter } from '../lib/index.js'
import { connect } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'
import { encodeRawFrame, OPCODE } from './helpers/hostile.js'

/**
 * Regression tests for the published `ws` advisories that affect servers,
 * run against this plugin as an app deploys it. Each one names the last
 * vulnerable version it would fail on; the first test pins the version
 * that @fastify/websocket actually loads to at least every fix.
 */

/** The `ws` that @fastify/websocket loads: the one serving our upgrades. */
function servingWsVersion (): string {
  const require = createRequire(import.meta.url)
  const fastifyWebsocket = require.resolve('@fastify/websocket')
  const wsEntry = createRequire(fastifyWebsocket).resolve('ws')
  return (JSON.parse(readFileSync(join(dirname(wsEntry), 'package.json'), 'utf8')) as { version: string }).version
}

function atLeast (version: string, minimum: string): boolean {
  const a = version.split('.').map(Number)
  const b = minimum.split('.').map(Number)
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0)
  }
  return true
}

const FIXES = [
  { advisory: 'CVE-2021-32640 / GHSA-6fc8-4gx4-v693, Sec-WebSocket-Protocol ReDoS', fixed: '7.4.6' },
  { advisory: 'CVE-2024-37890 / GHSA-3h5v-q93c-6h6q, more headers than maxHeadersCount crash the server', fixed: '8.17.1' },
  { advisory: 'tiny-fragment memory DoS (maxFragments)', fixed: '8.21.0' },
  { advisory: 'ping flood without reading pongs (maxPendingAutoPongs)', fixed: '8.23.0' }
]

t.test('the ws serving the upgrades is at or past every fix', async (t) => {
  const version = servingWsVersion()
  for (const fix of FIXES) t.ok(atLeast(version, fix.fixed), `ws ${version} >= ${fix.fixed} (${fix.advisory})`)
  const declared = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> }).dependencies.ws
  t.match(declared, /^\^?8\.(2[3-9]|[3-9]\d)\./, `package.json pins ws to a range that starts at a fixed version (${String(declared)})`)
})

/** A server as an app deploys it; `maxHeaderSize` raised where a test needs long headers. */
async function start (maxHeaderSize?: number): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify({
    logger: false,
    ...(maxHeaderSize === undefined ? {} : { serverFactory: (handler: http.RequestListener) => http.createServer({ maxHeaderSize }, handler) })
  })
  await app.register(wsRouter, { environment: 'production', allowAnonymous: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, port: address.port }
}

/** Send a raw HTTP request and read until the peer answers a status line or ends. */
async function rawRequest (port: number, request: string, timeoutMs = 10_000): Promise<{ status: string, elapsedMs: number }> {
  const started = Date.now()
  return await new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request))
    let text = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${timeoutMs} ms`)) }, timeoutMs)
    const done = (): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ status: text.split('\r\n')[0] ?? '', elapsedMs: Date.now() - started })
    }
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      if (text.includes('\r\n')) done()
    })
    socket.on('end', done)
    socket.on('error', done)
  })
}

/** A fresh client still gets its answer; resolves with the pong's id. */
async function stillServes (t: { equal: (found: unknown, wanted: unknown, message: string) => unknown }, port: number): Promise<void> {
  const client = await connect(`ws://127.0.0.1:${port}/ws`)
  client.send({ type: 'ping', id: 'after' })
  t.equal((await client.next('pong')).id, 'after', 'a fresh client is served afterwards')
  client.ws.terminate()
}

t.test('CVE-2024-37890: an upgrade with more headers than maxHeadersCount does not crash the server', async (t) => {
  // Vulnerable up to ws 8.17.0: Node drops the headers past maxHeadersCount
  // (2000), the Upgrade header among them, and ws read `undefined.toLowerCase()`
  // inside the 'upgrade' listener, which kills the process (here: the test).
  const { app, port } = await start()
  t.teardown(() => app.close())
  // As in the advisory's proof of concept: 2 000 two-character names, so
  // the request stays under Node's 16 KiB header limit and reaches ws.
  const chars = "!#$%&'*+-.0123456789abcdefghijklmnopqrstuvwxyz^_`|~"
  const filler: string[] = []
  for (let i = 0; i < chars.length && filler.length < 2000; i++) {
    for (let j = 0; j < chars.length && filler.length < 2000; j++) filler.push(`${chars[i] ?? ''}${chars[j] ?? ''}: x`)
  }
  const request = ['GET /ws HTTP/1.1', 'Host: 127.0.0.1', ...filler, 'Connection: Upgrade', 'Upgrade: websocket',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n')
  const answer = await rawRequest(port, request)
  t.match(answer.status, /^HTTP\/1\.1 4\d\d /, `refused with a 4xx, no upgrade (${answer.status || 'connection closed'})`)
  await stillServes(t, port)
  await waitFor(() => app.wsRouter.connectionCount === 0, 5000, 'the connection released')
})

t.test('CVE-2021-32640: a crafted Sec-WebSocket-Protocol header is refused in linear time', async (t) => {
  // Vulnerable up to ws 7.4.5 (and 6.2.1): the header was split with
  // /\s*,\s*/ after trim(), quadratic in runs of spaces. With maxHeaderSize
  // raised to 1 MiB, 'b' + 500 000 spaces + 'x' took minutes there; the
  // parser of ws 8 rejects it in one pass. The router reads the same header
  // for a bearer token before ws does, so its parsing is covered too.
  const { app, port } = await start(1024 * 1024)
  t.teardown(() => app.close())
  const hostile = 'b' + ' '.repeat(500_000) + 'x'
  const request = ['GET /ws HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Protocol: ${hostile}`, '', ''].join('\r\n')
  const answer = await rawRequest(port, request)
  t.match(answer.status, /^HTTP\/1\.1 400 /, `refused as a bad request (${answer.status})`)
  // A generous bound (the quadratic split needs minutes); the exact time is not the point.
  t.ok(answer.elapsedMs < 5000, `answered in ${answer.elapsedMs} ms`)
  const list = ['bearer', ...Array.from({ length: 20_000 }, (_, i) => `p${i}`)].join(' ,  ')
  const many = await rawRequest(port, request.replace(hostile, list))
  t.match(many.status, /^HTTP\/1\.1 (101|400) /, `a long list of subprotocols is answered (${many.status})`)
  t.ok(many.elapsedMs < 5000, `answered in ${many.elapsedMs} ms`)
  await stillServes(t, port)
})

/** Open a raw WebSocket connection on /ws. */
async function rawUpgrade (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await new Promise<void>((resolve, reject) => {
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      if (head.startsWith('HTTP/1.1 101')) resolve()
      else reject(new Error(head.split('\r\n')[0]))
    }
    socket.on('data', onData)
  })
  return socket
}

t.test('tiny fragments (fixed in ws 8.21.0): a message in more than 16 384 fragments is closed with 1008', async (t) => {
  // Up to ws 8.20.x every fragment was kept, with its overhead, until the
  // message ended: a client could pin memory one 1-byte fragment at a time.
  const { app, port } = await start()
  t.teardown(() => app.close())
  const socket = await rawUpgrade(port)
  let received = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]) })
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => {})
  const frames: Buffer[] = [encodeRawFrame({ fin: false, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: Buffer.from('"') })]
  for (let i = 0; i < 16_400; i++) frames.push(encodeRawFrame({ fin: false, rsv: 0, opcode: OPCODE.CONTINUATION, masked: true, payload: Buffer.from('a') }))
  socket.write(Buffer.concat(frames))
  await waitFor(() => received.length >= 4 || socket.destroyed, 10_000, 'the server to close')
  // The server's close frame: 0x88, length, then the code.
  t.equal(received[0], 0x88, 'a close frame')
  t.equal(received.readUInt16BE(2), 1008, 'with 1008 (too many message fragments)')
  socket.end()
  await closed
  await waitFor(() => app.wsRouter.connectionCount === 0, 5000, 'the connection released')
  t.equal(app.wsRouter.getStats().protocolErrors.WS_ERR_TOO_MANY_BUFFERED_PARTS, 1, 'counted as a protocol error')
  await stillServes(t, port)
})

t.test('ping flood (fixed in ws 8.23.0): a client that sends pings and never reads the pongs is cut off', async (t) => {
  // Up to ws 8.22.x every ping got a pong queued in memory, however many
  // the peer left unread. Now at most 60 automatic pongs wait for the
  // socket; then ws terminates the connection.
  const { app, port } = await start()
  t.teardown(() => app.close())
  const socket = await rawUpgrade(port)
  socket.pause() // never read: the pongs pile up on the server
  const peer = { cutOff: false }
  socket.on('error', () => { peer.cutOff = true })
  socket.on('close', () => { peer.cutOff = true })
  const ping = encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.PING, masked: true, payload: Buffer.alloc(125, 0x70) })
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => ping))
  let sentBytes = 0
  // Bounded: 256 MiB of pings; the kernel's buffers hold a few MiB of pongs, so the cut comes long before.
  while (!peer.cutOff && sentBytes < 256 * 1024 * 1024) {
    if (!socket.write(batch)) await new Promise<void>((resolve) => { socket.once('drain', resolve); socket.once('close', resolve) })
    sentBytes += batch.length
  }
  t.ok(peer.cutOff, `the server cut the connection after ${(sentBytes / 1024 / 1024).toFixed(1)} MiB of pings`)
  socket.destroy()
  await waitFor(() => app.wsRouter.connectionCount === 0, 5000, 'the connection released')
  await stillServes(t, port)
})
