/**
 * Messages between the harness, its load-generator workers and the
 * benchmark servers. Plain JSON-able objects (a histogram is structured-cloned).
 */
import type { RecordableHistogram } from 'node:perf_hooks'

export type WireProtocol = 'json' | 'socketio'

// ---- harness ↔ server (child process IPC) ----

export type ServerCommand =
  | { seq: number, cmd: 'usage' }
  | { seq: number, cmd: 'gc' }
  | { seq: number, cmd: 'stats' }
  | { seq: number, cmd: 'exit' }
  | { seq: number, cmd: 'snapshot', file: string }

export interface ServerUsage {
  cpu: NodeJS.CpuUsage
  memory: NodeJS.MemoryUsage
  connections: number
  /** The server's own `performance.now()`, to turn CPU time into a utilisation. */
  wallMs: number
}

export interface ServerReply {
  seq: number
  ok: boolean
  error?: string
  usage?: ServerUsage
  stats?: unknown
  /** Where a heap snapshot was written. */
  file?: string
}

export interface ServerReady {
  ready: true
  name: string
  port: number
  pid: number
  info?: unknown
}

// ---- harness ↔ load-generator worker ----

/** Where and how a worker's connections talk to a server. */
export interface Endpoint {
  url: string
  protocol: WireProtocol
  /** Wait for a first frame without id (the plugin's `connection_established`) before the connection counts as open. */
  greeting: boolean
}

/** The request every connection repeats, and what a good reply looks like. */
export interface RequestSpec {
  /** Message type (json) or event name (Socket.IO). */
  type: string
  /** The request's `payload`, as JSON text. */
  payloadJson: string
  /** `type` of a good reply (json protocol); Socket.IO acks are good when they carry no `error`. */
  replyType: string
  /**
   * Each connection first joins a room of its own (the built-in `join`) and
   * sends to it: the plugin's built-in `user_message` in a room of one.
   * The payload's `"room":"bench"` becomes that room.
   */
  joinOwnRoom?: boolean
}

export type WorkerCommand =
  | { seq: number, cmd: 'connect', endpoint: Endpoint, count: number, concurrency: number }
  | { seq: number, cmd: 'start', request: RequestSpec, window: number }
  | { seq: number, cmd: 'mark' }
  | { seq: number, cmd: 'collect' }
  | { seq: number, cmd: 'stop' }
  | { seq: number, cmd: 'close' }
  | { seq: number, cmd: 'churn', endpoint: Endpoint, request: RequestSpec, cycles: number, concurrency: number, firstIndex: number }

export interface ConnectReply { seq: number, opened: number, failed: number, firstError?: string, ms: number }
export interface CollectReply {
  seq: number
  replies: number
  badReplies: number
  /** Connections that closed or failed while under load. */
  dropped: number
  elapsedMs: number
  histogram: RecordableHistogram
}
export interface StopReply { seq: number, leftInFlight: number }
export interface CloseReply { seq: number, closed: number, ms: number }
export interface ChurnReply { seq: number, ok: number, failed: number, firstError?: string, ms: number }
export interface AckReply { seq: number }

export type WorkerReply = ConnectReply | CollectReply | StopReply | CloseReply | ChurnReply | AckReply
