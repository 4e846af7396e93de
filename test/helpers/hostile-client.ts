import net from 'node:net'
import WebSocket from 'ws'
import { answeredIds, expectedIds, idKey, encodeRawFrame, OPCODE, type OracleLimits, type RawScenario, type WireFrame } from './hostile.js'

/**
 * Clients that send hostile frames and account for every id, shared by the
 * property tests and the soak.
 *
 * The rule they check (docs/reliability.md#what-answered-means): every id
 * that `expectedIds` says is readable gets at least one frame back carrying
 * it, unless the connection was closed first with a documented close code
 * (DOCUMENTED_CLOSE_CODES); an id still unanswered on an open connection,
 * or on a connection that ended any other way (1006: no close frame), is a
 * violation. One documented limit is counted apart: the requests of a
 * JSON-RPC batch on an `auto` route, on a connection that got a
 * `RATE_LIMITED` error without an id (the rate limit refuses such a batch
 * whole, before it is told apart from an envelope).
 */

/** Close codes of docs/protocol.md#close-codes that the server sends with a close frame. */
export const DOCUMENTED_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001, 1002, 1007, 1008, 1009, 1011, 1012, 1013])

export interface Unanswered {
  readonly key: string
  readonly kind: string
}

export interface ConnectionReport {
  /** Frames written to the socket (a frame is not written once the socket closed). */
  sent: number
  /** Ids the oracle said must be answered. */
  expected: number
  answered: number
  unanswered: Unanswered[]
  /** Unanswered requests of JSON-RPC batches on a connection that got an id-less RATE_LIMITED: the documented limit. */
  rateLimitedBatch: Unanswered[]
  /** The close the client saw; null when it closed the connection itself at the end. */
  close: { code: number, reason: string } | null
  /** A frame that must close the connection was sent; its code. */
  expectedClose: number | null
  /** Some frame was refused by the rate limit with an error that carries no id. */
  rateLimitedWithoutId: boolean
  /** The sentinel after a chunk got no answer in time while the connection stayed open. */
  stalled: boolean
}

export interface DriveOptions extends OracleLimits {
  /** Frames sent back to back before a sentinel `ping` is awaited. */
  readonly chunk: number
  /** How long to wait for an answer that is owed (sentinel or end of connection). */
  readonly answerTimeoutMs?: number
}

/** Resolve when `done()` holds, re-checked on every `poke()`, or after `ms`. */
class Waiter {
  private wake: (() => void) | null = null
  poke (): void {
    const wake = this.wake
    this.wake = null
    wake?.()
  }

  async until (done: () => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!done()) {
      const left = deadline - Date.now()
      if (left <= 0) return false
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.wake = () => { clearTimeout(timer); resolve() }
      })
    }
    return true
  }
}

/**
 * Open one connection, send `frames` in chunks (each followed by a
 * sentinel), wait for every owed answer, and report.
 */
export async function driveConnection (url: string, frames: readonly WireFrame[], options: DriveOptions): Promise<ConnectionReport> {
  const answerTimeoutMs = options.answerTimeoutMs ?? 10_000
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const owed = new Map<string, { count: number, kind: string, batch: boolean }>()
  const report: ConnectionReport = { sent: 0, expected: 0, answered: 0, unanswered: [], rateLimitedBatch: [], close: null, expectedClose: null, rateLimitedWithoutId: false, stalled: false }
  const waiter = new Waiter()
  let closed = false
  ws.on('message', (data) => {
    const text = data.toString()
    if (text.includes('"RATE_LIMITED"') && !text.includes('"id":')) report.rateLimitedWithoutId = true
    for (const key of answeredIds(text)) {
      const entry = owed.get(key)
      if (entry === undefined) continue
      report.answered++
      if (--entry.count === 0) owed.delete(key)
    }
    waiter.poke()
  })
  ws.on('close', (code, reason) => {
    closed = true
    report.close = { code, reason: reason.toString() }
    waiter.poke()
  })
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode ?? 0}`)))
    ws.once('error', reject)
  })

  const sentinel = options.protocol === 'jsonrpc'
    ? (n: number) => ({ key: idKey(`sentinel-${n}`), text: JSON.stringify({ jsonrpc: '2.0', method: 'sentinel', id: `sentinel-${n}` }) })
    : (n: number) => ({ key: idKey(`sentinel-${n}`), text: JSON.stringify({ type: 'ping', id: `sentinel-${n}` }) })
  let chunks = 0
  for (let start = 0; start < frames.length; start += options.chunk) {
    if (closed) break
    for (const frame of frames.slice(start, start + options.chunk)) {
      if (closed || ws.readyState !== WebSocket.OPEN) break
      const expectation = expectedIds(frame, options)
      for (const key of expectation.ids) {
        const entry = owed.get(key)
        if (entry === undefined) owed.set(key, { count: 1, kind: frame.kind, batch: expectation.batch === true })
        else entry.count++
        report.expected++
      }
      ws.send(frame.data, { binary: frame.binary })
      report.sent++
      if (expectation.close !== null) {
        report.expectedClose = expectation.close
        break
      }
    }
    if (report.expectedClose !== null) break
    if (closed || ws.readyState !== WebSocket.OPEN) break
    const probe = sentinel(chunks++)
    owed.set(probe.key, { count: 1, kind: 'sentinel', batch: false })
    ws.send(probe.text)
    if (!await waiter.until(() => closed || !owed.has(probe.key), answerTimeoutMs)) {
      report.stalled = true
      break
    }
  }
  // A frame that must close the connection: wait for the close, not only for the answers.
  await waiter.until(() => closed || (report.expectedClose === null && owed.size === 0), answerTimeoutMs)
  if (!closed) {
    ws.close(1000)
    await waiter.until(() => closed, answerTimeoutMs)
    if (!closed) ws.terminate()
    report.close = null
  }
  for (const [key, entry] of owed) {
    const list = entry.batch && report.rateLimitedWithoutId ? report.rateLimitedBatch : report.unanswered
    for (let i = 0; i < entry.count; i++) list.push({ key, kind: entry.kind })
  }
  return report
}

/** Unanswered ids that no documented close excuses. */
export function violations (report: ConnectionReport): Unanswered[] {
  if (report.unanswered.length === 0) return []
  if (report.close !== null && DOCUMENTED_CLOSE_CODES.has(report.close.code)) return []
  return report.unanswered
}

// ---------------------------------------------------------------------------
// Raw TCP

export interface RawReport {
  /** Code of the server's close frame; 1005 for one without a code; null when none came. */
  close: number | null
  /** The socket ended (FIN or RST) before a close frame. */
  endedWithoutClose: boolean
  answered: Set<string>
  /** The server answered the sentinel sent after a scenario that must not close. */
  sentinelAnswered: boolean
}

const UPGRADE_KEY = 'dGhlIHNhbXBsZSBub25jZQ=='

/** Server → client frames (never masked) parsed from a byte stream. */
class ServerFrames {
  private buffer: Buffer = Buffer.alloc(0)
  private message: Buffer[] = []
  onText: (text: string) => void = () => {}
  onClose: (code: number) => void = () => {}

  push (chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      if (this.buffer.length < 2) return
      const b0 = this.buffer[0] as number
      const b1 = this.buffer[1] as number
      let length = b1 & 0x7F
      let offset = 2
      if (length === 126) {
        if (this.buffer.length < 4) return
        length = this.buffer.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (this.buffer.length < 10) return
        length = Number(this.buffer.readBigUInt64BE(2))
        offset = 10
      }
      if (this.buffer.length < offset + length) return
      const payload = this.buffer.subarray(offset, offset + length)
      this.buffer = this.buffer.subarray(offset + length)
      const opcode = b0 & 0x0F
      const fin = (b0 & 0x80) !== 0
      if (opcode === OPCODE.CLOSE) {
        this.onClose(payload.length >= 2 ? payload.readUInt16BE(0) : 1005)
      } else if (opcode === OPCODE.TEXT || opcode === OPCODE.CONTINUATION) {
        this.message.push(Buffer.from(payload))
        if (fin) {
          this.onText(Buffer.concat(this.message).toString())
          this.message = []
        }
      }
    }
  }
}

/**
 * Upgrade a raw TCP socket on `path`, write the scenario's bytes in chunks
 * of `writeChunk` bytes, then (when the scenario must not close) a
 * sentinel, and report what the server did.
 */
export async function driveRaw (port: number, path: string, scenario: RawScenario, writeChunk: number, timeoutMs = 10_000): Promise<RawReport> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const report: RawReport = { close: null, endedWithoutClose: false, answered: new Set(), sentinelAnswered: false }
  const frames = new ServerFrames()
  const waiter = new Waiter()
  let ended = false
  let upgraded = false
  let head = Buffer.alloc(0)
  const sentinelKey = idKey('raw-sentinel')
  frames.onText = (text) => {
    for (const key of answeredIds(text)) {
      if (key === sentinelKey) report.sentinelAnswered = true
      else report.answered.add(key)
    }
    waiter.poke()
  }
  frames.onClose = (code) => {
    if (report.close === null) report.close = code
    waiter.poke()
  }
  socket.on('data', (chunk: Buffer) => {
    if (upgraded) {
      frames.push(chunk)
      return
    }
    head = Buffer.concat([head, chunk])
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) return
    if (!head.subarray(0, 12).toString().includes(' 101')) {
      socket.destroy(new Error(`upgrade refused: ${head.subarray(0, end).toString().split('\r\n')[0] ?? ''}`))
      return
    }
    upgraded = true
    waiter.poke()
    const rest = head.subarray(end + 4)
    if (rest.length > 0) frames.push(rest)
  })
  socket.on('error', () => {})
  socket.on('close', () => {
    ended = true
    if (report.close === null) report.endedWithoutClose = true
    waiter.poke()
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${UPGRADE_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  if (!await waiter.until(() => upgraded || ended, timeoutMs) || !upgraded) {
    socket.destroy()
    throw new Error('raw upgrade did not complete')
  }
  for (let i = 0; i < scenario.bytes.length; i += writeChunk) {
    if (ended) break
    socket.write(scenario.bytes.subarray(i, i + writeChunk))
  }
  if (scenario.close === null && !ended) {
    socket.write(encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: Buffer.from(JSON.stringify({ type: 'ping', id: 'raw-sentinel' })) }))
    await waiter.until(() => ended || report.sentinelAnswered, timeoutMs)
    const close = Buffer.alloc(2)
    close.writeUInt16BE(1000)
    if (!ended) socket.write(encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.CLOSE, masked: true, payload: close }))
  }
  await waiter.until(() => ended || report.close !== null, timeoutMs)
  socket.destroy()
  return report
}
