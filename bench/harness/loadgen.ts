/**
 * The load generator: one worker thread of it. Every target is driven by
 * this same code on the same `ws` client, so the client's cost is the same
 * for all; for Socket.IO it speaks the Engine.IO v4 / Socket.IO v5 wire
 * protocol itself (no socket.io-client), so that the only difference is a
 * few bytes of framing.
 *
 * Each connection keeps `window` requests outstanding: request slot `s`
 * sends ids `s, s + window, s + 2·window, …`, and a reply's id modulo
 * `window` names its slot, whatever order replies come in.
 */
import { parentPort, threadId } from 'node:worker_threads'
import { createHistogram, performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import type {
  AckReply, ChurnReply, CloseReply, CollectReply, ConnectReply, Endpoint, RequestSpec,
  StopReply, WorkerCommand, WorkerReply
} from './messages.js'

const port = parentPort
if (port === null) throw new Error('loadgen.ts runs as a worker thread')

const CLIENT_OPTIONS: WebSocket.ClientOptions = {
  perMessageDeflate: false,
  // The client's cost only has to be the same for every target; UTF-8
  // checks of replies are the server's business, not the benchmark's.
  skipUTF8Validation: true,
  handshakeTimeout: 15_000
}

const kClient = Symbol('client')

interface Client {
  readonly ws: WebSocket
  ready: boolean
  /** Send time of the request outstanding in each slot, ms. */
  sendTimes: Float64Array
  /** Next sequence number of each slot. */
  seqs: Float64Array
  inFlight: number
  /** With `joinOwnRoom`: this connection's frame tail (its own room), and whether its join was answered. */
  suffix: string | null
  joined: boolean
}

type TaggedSocket = WebSocket & { [kClient]: Client }

let endpoint: Endpoint = { url: '', protocol: 'json', greeting: false }
let clients: Client[] = []
let window = 1
let framePrefix = ''
let frameSuffix = ''
let replyType = ''
let sending = false
let recording = false
let inFlight = 0
let replies = 0
let badReplies = 0
let dropped = 0
let markedAt = 0
/** Latency in microseconds. */
const histogram = createHistogram()
let onIdle: (() => void) | null = null
/** The id of a connection's `join` of its own room (never a request id: those are numbers). */
const JOIN_ID = 'join-own-room'

function reply (message: WorkerReply): void {
  port?.postMessage(message)
}

// ---- the request/reply loop ----

function sendRequest (client: Client, slot: number): void {
  const seq = client.seqs[slot] as number
  client.seqs[slot] = seq + 1
  const id = seq * window + slot
  client.sendTimes[slot] = performance.now()
  client.inFlight++
  inFlight++
  client.ws.send(framePrefix + id + (client.suffix ?? frameSuffix))
}

/** The answer to a connection's `join` of its own room: its requests start. */
function onJoined (client: Client, good: boolean): void {
  if (!good) throw new Error('loadgen: the server refused to join a room of one')
  client.joined = true
  if (!sending || !client.ready) return
  for (let slot = 0; slot < window; slot++) sendRequest(client, slot)
}

function onReply (client: Client, id: number, good: boolean): void {
  const slot = id % window
  if (recording) {
    const micros = Math.round((performance.now() - (client.sendTimes[slot] as number)) * 1000)
    histogram.record(micros < 1 ? 1 : micros)
  }
  replies++
  if (!good) badReplies++
  client.inFlight--
  inFlight--
  if (sending && client.ready) sendRequest(client, slot)
  else if (inFlight === 0 && onIdle !== null) onIdle()
}

/** json protocol: `{type, id?, payload?}` frames. */
function onJsonFrame (client: Client, text: string): void {
  const frame = JSON.parse(text) as { type?: unknown, id?: unknown }
  const id = frame.id
  if (id === JOIN_ID) {
    onJoined(client, frame.type === 'joined')
    return
  }
  if (typeof id !== 'number') {
    // A frame without id: the plugin's `connection_established` greeting.
    if (!client.ready && frame.type === 'connection_established') markReady(client)
    return
  }
  onReply(client, id, frame.type === replyType)
}

/** Engine.IO v4 packet types: 0 open, 2 ping, 3 pong, 4 message; Socket.IO v5: 0 connect, 3 ack, 4 connect error. */
function onSocketIoFrame (client: Client, text: string): void {
  const engineType = text.charCodeAt(0)
  if (engineType === 50 /* '2' ping */ && text.length === 1) {
    client.ws.send('3')
    return
  }
  if (engineType === 48 /* '0' open */) {
    client.ws.send('40')
    return
  }
  if (engineType !== 52 /* '4' message */) return
  const packetType = text.charCodeAt(1)
  if (packetType === 51 /* '3' ack */) {
    let end = 2
    while (end < text.length) {
      const c = text.charCodeAt(end)
      if (c < 48 || c > 57) break
      end++
    }
    const id = Number(text.slice(2, end))
    const args = JSON.parse(text.slice(end)) as unknown[]
    const first = args[0]
    onReply(client, id, first !== null && typeof first === 'object' && !('error' in first))
  } else if (packetType === 48 /* '0' connect */) {
    if (!client.ready) markReady(client)
  } else if (packetType === 52 /* '4' connect error */) {
    client.ws.close(1000)
  }
}

function onMessage (this: WebSocket, data: WebSocket.RawData): void {
  const client = (this as TaggedSocket)[kClient]
  const text = (data as Buffer).toString()
  if (endpoint.protocol === 'socketio') onSocketIoFrame(client, text)
  else onJsonFrame(client, text)
}

// ---- opening connections ----

let readyWaiters = new Map<Client, () => void>()

function markReady (client: Client): void {
  client.ready = true
  const done = readyWaiters.get(client)
  if (done !== undefined) {
    readyWaiters.delete(client)
    done()
  }
}

function onOpen (this: WebSocket): void {
  const client = (this as TaggedSocket)[kClient]
  if (endpoint.protocol === 'json' && !endpoint.greeting) markReady(client)
}

function onClose (this: WebSocket): void {
  const client = (this as TaggedSocket)[kClient]
  if (client.ready) {
    if (sending || client.inFlight > 0) dropped++
    inFlight -= client.inFlight
    client.inFlight = 0
    client.ready = false
    if (inFlight === 0 && onIdle !== null) onIdle()
  }
}

function onError (): void {
  // Counted through 'close' (which always follows); the first error of a connect is reported by openOne.
}

function openOne (): Promise<Client> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint.url, CLIENT_OPTIONS)
    const client: Client = { ws, ready: false, sendTimes: new Float64Array(0), seqs: new Float64Array(0), inFlight: 0, suffix: null, joined: false }
    ;(ws as TaggedSocket)[kClient] = client
    ws.on('message', onMessage)
    ws.on('open', onOpen)
    ws.on('close', onClose)
    let failure: Error | null = null
    const fail = (err: Error): void => {
      failure ??= err
    }
    ws.on('error', fail)
    const onEarlyClose = (): void => {
      readyWaiters.delete(client)
      reject(failure ?? new Error('closed before ready'))
    }
    ws.once('close', onEarlyClose)
    readyWaiters.set(client, () => {
      ws.off('close', onEarlyClose)
      ws.off('error', fail)
      ws.on('error', onError)
      resolve(client)
    })
  })
}

async function connect (seq: number, target: Endpoint, count: number, concurrency: number): Promise<ConnectReply> {
  endpoint = target
  readyWaiters = new Map()
  const started = performance.now()
  let next = 0
  let failed = 0
  let firstError: string | undefined
  // A ramp: at most `concurrency` handshakes in progress at once.
  const lane = async (): Promise<void> => {
    while (next < count) {
      next++
      try {
        clients.push(await openOne())
      } catch (err) {
        failed++
        firstError ??= String(err)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(count, concurrency) }, lane))
  return { seq, opened: clients.length, failed, firstError, ms: performance.now() - started }
}

// ---- load ----

function start (seq: number, request: RequestSpec, requestedWindow: number): AckReply {
  window = requestedWindow
  replyType = request.replyType
  if (endpoint.protocol === 'socketio') {
    framePrefix = '42'
    frameSuffix = `[${JSON.stringify(request.type)},${request.payloadJson}]`
  } else {
    framePrefix = `{"type":${JSON.stringify(request.type)},"id":`
    frameSuffix = `,"payload":${request.payloadJson}}`
  }
  replies = 0
  badReplies = 0
  dropped = 0
  sending = true
  const ownRooms = request.joinOwnRoom === true && endpoint.protocol === 'json'
  clients.forEach((client, index) => {
    client.sendTimes = new Float64Array(window)
    client.seqs = new Float64Array(window)
    client.suffix = null
    if (!client.ready) return
    if (ownRooms) {
      // A room of one: this worker thread and this connection name it.
      const room = `bench-${threadId}-${index}`
      client.suffix = frameSuffix.replace('"room":"bench"', `"room":${JSON.stringify(room)}`)
      if (!client.joined) {
        // Its requests start when the join is answered (onJoined).
        client.ws.send(`{"type":"join","id":${JSON.stringify(JOIN_ID)},"payload":{"room":${JSON.stringify(room)}}}`)
        return
      }
    }
    for (let slot = 0; slot < window; slot++) sendRequest(client, slot)
  })
  return { seq }
}

function mark (seq: number): AckReply {
  histogram.reset()
  replies = 0
  badReplies = 0
  dropped = 0
  markedAt = performance.now()
  recording = true
  return { seq }
}

function collect (seq: number): CollectReply {
  recording = false
  return { seq, replies, badReplies, dropped, elapsedMs: performance.now() - markedAt, histogram }
}

function stop (seq: number): Promise<StopReply> {
  sending = false
  recording = false
  if (inFlight === 0) return Promise.resolve({ seq, leftInFlight: 0 })
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      onIdle = null
      resolve({ seq, leftInFlight: inFlight })
    }, 5000)
    onIdle = () => {
      onIdle = null
      clearTimeout(timer)
      resolve({ seq, leftInFlight: 0 })
    }
  })
}

async function closeAll (seq: number): Promise<CloseReply> {
  const started = performance.now()
  const closing = clients.map((client) => new Promise<void>((resolve) => {
    if (client.ws.readyState === WebSocket.CLOSED) return resolve()
    const timer = setTimeout(() => client.ws.terminate(), 5000)
    client.ws.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
    client.ws.close(1000)
  }))
  await Promise.all(closing)
  const closed = clients.length
  clients = []
  inFlight = 0
  return { seq, closed, ms: performance.now() - started }
}

// ---- churn: connect, one request, close (every other one abruptly) ----

function oneCycle (target: Endpoint, request: RequestSpec, abrupt: boolean): Promise<void> {
  const frame = target.protocol === 'socketio'
    ? `421[${JSON.stringify(request.type)},${request.payloadJson}]`
    : `{"type":${JSON.stringify(request.type)},"id":1,"payload":${request.payloadJson}}`
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(target.url, CLIENT_OPTIONS)
    let answered = false
    let failure: Error | null = null
    const timer = setTimeout(() => {
      failure ??= new Error('churn cycle timed out')
      ws.terminate()
    }, 15_000)
    const finish = (): void => {
      answered = true
      if (abrupt) ws.terminate()
      else ws.close(1000)
    }
    ws.on('open', () => {
      if (target.protocol === 'json' && !target.greeting) ws.send(frame)
    })
    ws.on('message', (data: WebSocket.RawData) => {
      const text = (data as Buffer).toString()
      if (target.protocol === 'socketio') {
        if (text === '2') ws.send('3')
        else if (text.startsWith('0')) ws.send('40')
        else if (text.startsWith('40')) ws.send(frame)
        else if (text.startsWith('431[')) finish()
        return
      }
      const parsed = JSON.parse(text) as { type?: unknown, id?: unknown }
      if (parsed.id === 1) finish()
      else if (parsed.type === 'connection_established') ws.send(frame)
    })
    ws.on('error', (err) => { failure ??= err })
    ws.on('close', () => {
      clearTimeout(timer)
      if (answered) resolve()
      else reject(failure ?? new Error('closed before the reply'))
    })
  })
}

async function churn (seq: number, target: Endpoint, request: RequestSpec, cycles: number, concurrency: number, firstIndex: number): Promise<ChurnReply> {
  const started = performance.now()
  let next = 0
  let ok = 0
  let failed = 0
  let firstError: string | undefined
  const lane = async (): Promise<void> => {
    while (next < cycles) {
      const index = firstIndex + next++
      try {
        await oneCycle(target, request, index % 2 === 1)
        ok++
      } catch (err) {
        failed++
        firstError ??= String(err)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(cycles, concurrency) }, lane))
  return { seq, ok, failed, firstError, ms: performance.now() - started }
}

// ---- commands ----

async function handle (command: WorkerCommand): Promise<WorkerReply> {
  switch (command.cmd) {
    case 'connect': return connect(command.seq, command.endpoint, command.count, command.concurrency)
    case 'start': return start(command.seq, command.request, command.window)
    case 'mark': return mark(command.seq)
    case 'collect': return collect(command.seq)
    case 'stop': return stop(command.seq)
    case 'close': return closeAll(command.seq)
    case 'churn': return churn(command.seq, command.endpoint, command.request, command.cycles, command.concurrency, command.firstIndex)
  }
}

port.on('message', (command: WorkerCommand) => {
  handle(command).then(reply, (err: unknown) => {
    console.error('loadgen worker:', err)
    process.exit(1)
  })
})
