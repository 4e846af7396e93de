/**
 * What the benchmark measures: servers, targets (a server and a message),
 * scenarios, and the two run modes.
 */
import type { Endpoint, RequestSpec, WireProtocol } from './messages.js'
import type { ServerName } from './servers.js'

export interface ServerSpec {
  readonly name: ServerName
  readonly label: string
  readonly protocol: WireProtocol
  readonly path: string
  /** The server greets each connection (the plugin's `connection_established`). */
  readonly greeting: boolean
}

export const SERVERS: Readonly<Record<ServerName, ServerSpec>> = {
  'raw-ws': { name: 'raw-ws', label: 'raw ws echo', protocol: 'json', path: '/', greeting: false },
  handwritten: { name: 'handwritten', label: 'hand-written @fastify/websocket router', protocol: 'json', path: '/ws', greeting: false },
  socketio: { name: 'socketio', label: 'Socket.IO 4 (acked events)', protocol: 'socketio', path: '/socket.io/?EIO=4&transport=websocket', greeting: false },
  plugin: { name: 'plugin', label: 'fastify-ws-router', protocol: 'json', path: '/ws', greeting: true },
  'plugin-chat': { name: 'plugin-chat', label: 'fastify-ws-router, chat built-ins', protocol: 'json', path: '/ws', greeting: true },
  'plugin-lifecycle': { name: 'plugin-lifecycle', label: 'fastify-ws-router, lifecycle on', protocol: 'json', path: '/ws', greeting: true },
  'plugin-baseline': { name: 'plugin-baseline', label: 'fastify-ws-router, baseline build (--baseline)', protocol: 'json', path: '/ws', greeting: true }
}

export function endpointOf (server: ServerSpec, port: number): Endpoint {
  return { url: `ws://127.0.0.1:${port}${server.path}`, protocol: server.protocol, greeting: server.greeting }
}

export type MessageKind = 'ping' | 'user_message'

export interface TargetSpec {
  readonly id: string
  /** Number in issue 6's list: 1–3 baselines, 4–6 this project. */
  readonly number: number
  readonly label: string
  readonly server: ServerName
  readonly kind: MessageKind
  /** `type` of a good reply (json servers). */
  readonly replyType: string
  /** Each connection joins a room of its own first, and sends to it (`RequestSpec.joinOwnRoom`). */
  readonly joinOwnRoom?: boolean
}

export const TARGETS: readonly TargetSpec[] = [
  { id: 'raw-ws', number: 1, label: '(1) raw ws echo (floor)', server: 'raw-ws', kind: 'ping', replyType: 'ping' },
  { id: 'handwritten-ping', number: 2, label: '(2) hand-written router, ping', server: 'handwritten', kind: 'ping', replyType: 'pong' },
  { id: 'handwritten-user_message', number: 2, label: '(2) hand-written router, user_message', server: 'handwritten', kind: 'user_message', replyType: 'user_message_result' },
  { id: 'socketio-ping', number: 3, label: '(3) Socket.IO ack, ping', server: 'socketio', kind: 'ping', replyType: '' },
  { id: 'socketio-user_message', number: 3, label: '(3) Socket.IO ack, user_message', server: 'socketio', kind: 'user_message', replyType: '' },
  { id: 'plugin-ping', number: 4, label: '(4) plugin, ping → pong', server: 'plugin', kind: 'ping', replyType: 'pong' },
  { id: 'plugin-user_message', number: 5, label: '(5) plugin, validated user_message', server: 'plugin', kind: 'user_message', replyType: 'user_message_result' },
  // Issue 9: the chat built-in itself (membership check, fan-out to the room, message_ack), each connection in a room of one.
  { id: 'plugin-room_message', number: 5, label: '(5b) plugin, built-in user_message, room of one', server: 'plugin-chat', kind: 'user_message', replyType: 'message_ack', joinOwnRoom: true },
  { id: 'plugin-lifecycle', number: 6, label: '(6) plugin, lifecycle on (heartbeat 1 s, rate limit, idle timeout)', server: 'plugin-lifecycle', kind: 'user_message', replyType: 'user_message_result' },
  // Only with --baseline DIR: (4) and (5) built from an earlier commit, for before/after in one run.
  { id: 'baseline-ping', number: 7, label: '(7) baseline build, ping → pong', server: 'plugin-baseline', kind: 'ping', replyType: 'pong' },
  { id: 'baseline-user_message', number: 7, label: '(7) baseline build, validated user_message', server: 'plugin-baseline', kind: 'user_message', replyType: 'user_message_result' }
]

/** The baselines a plugin target is compared with: same message, other server. */
export function baselinesOf (target: TargetSpec): { handwritten: string, socketio: string } {
  return { handwritten: `handwritten-${target.kind}`, socketio: `socketio-${target.kind}` }
}

/** `{"room":"bench","text":"xxx…"}`, exactly `bytes` long (ASCII). */
export function payloadJson (bytes: number): string {
  const empty = '{"room":"bench","text":""}'
  if (bytes < empty.length) throw new Error(`payload must be at least ${empty.length} bytes`)
  return `{"room":"bench","text":"${'x'.repeat(bytes - empty.length)}"}`
}

export function requestOf (target: TargetSpec, payloadBytes: number): RequestSpec {
  const request: RequestSpec = { type: target.kind, payloadJson: payloadJson(payloadBytes), replyType: target.replyType }
  if (target.joinOwnRoom === true) request.joinOwnRoom = true
  return request
}

export interface Scenario {
  /** `c100-w16-64b`: the name `--scenarios` takes. */
  readonly id: string
  readonly label: string
  readonly connections: number
  /** Requests outstanding per connection. */
  readonly window: number
  readonly payloadBytes: number
}

function scenario (connections: number, window: number, payloadBytes: number): Scenario {
  const size = payloadBytes % 1024 === 0 ? `${payloadBytes / 1024}KiB` : `${payloadBytes}B`
  return {
    id: `c${connections}-w${window}-${size.toLowerCase()}`,
    label: `C=${connections} W=${window} ${size.replace(/(\d)([KB])/, '$1 $2')}`,
    connections,
    window,
    payloadBytes
  }
}

export const ALL_SCENARIOS: readonly Scenario[] = [64, 4096].flatMap((bytes) => [
  scenario(1, 1, bytes),
  scenario(100, 1, bytes),
  scenario(1000, 1, bytes),
  scenario(100, 16, bytes)
])

/** The scenarios issue 6's targets are judged on. */
export const KEY_SCENARIOS = ['c100-w16-64b', 'c1000-w1-64b'] as const

export interface Mode {
  readonly name: 'full' | 'quick'
  readonly scenarios: readonly string[]
  readonly targets: readonly string[]
  readonly rounds: number
  readonly warmupMs: number
  readonly measureMs: number
  readonly memoryServers: readonly ServerName[]
  readonly memoryConnections: number
  readonly churnServers: readonly ServerName[]
  readonly churnCycles: number
  readonly churnConcurrency: number
}

const ALL_SERVERS: readonly ServerName[] = ['raw-ws', 'handwritten', 'socketio', 'plugin', 'plugin-lifecycle']

export const MODES: Readonly<Record<Mode['name'], Mode>> = {
  full: {
    name: 'full',
    scenarios: ALL_SCENARIOS.map((s) => s.id),
    targets: TARGETS.filter((t) => t.server !== 'plugin-baseline').map((t) => t.id),
    rounds: 3,
    warmupMs: 2000,
    measureMs: 5000,
    memoryServers: ALL_SERVERS,
    memoryConnections: 5000,
    churnServers: ALL_SERVERS,
    churnCycles: 20_000,
    churnConcurrency: 50
  },
  quick: {
    name: 'quick',
    scenarios: [...KEY_SCENARIOS],
    // The targets the checks need: no floor, no lifecycle slot.
    targets: ['handwritten-ping', 'handwritten-user_message', 'socketio-ping', 'socketio-user_message', 'plugin-ping', 'plugin-user_message'],
    rounds: 1,
    warmupMs: 300,
    measureMs: 1000,
    memoryServers: ['handwritten', 'plugin'],
    memoryConnections: 500,
    churnServers: ['plugin'],
    churnCycles: 1000,
    churnConcurrency: 50
  }
}
