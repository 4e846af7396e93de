import fc from 'fast-check'

/**
 * Hostile client frames, generated with fast-check from the grammar of
 * docs/protocol.md, and the oracle that says which of them must be answered.
 * One module for both users: the seeded property tests
 * (test/property*.test.ts) and the soak (`npm run soak`, bench/soak.ts).
 *
 * Two levels:
 * - message level (`hostileFrame`): what a `ws` client can send: mutated
 *   envelopes, wrong types, deep nesting, huge ids, prototype keys,
 *   non-finite numbers, invalid UTF-8 in a text frame, binary frames,
 *   oversize frames, JSON-RPC 2.0 edge cases and batches;
 * - byte level (`rawScenario`): WebSocket frames written by hand on a raw
 *   TCP socket: fragmentation, control frames mid-message, reserved bits,
 *   missing masks, bad opcodes, oversize lengths, bad close frames.
 *
 * Ids. A generated frame holds "id slots" where a valid id goes; each slot
 * is filled, when the frame is rendered, with an id unique to its
 * connection, so every answer can be matched to its frame. Ids that must
 * not be readable (too long, not safe integers, wrong types) are generated
 * as such. Which ids must be answered is decided by `expectedIds` from the
 * final bytes alone, by the rules of docs/protocol.md, not from the model
 * that built them.
 */

/** The defaults of the router that the oracle follows (docs/api.md). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
export const DEFAULT_MAX_DEPTH = 32
const MAX_TYPE_LENGTH = 64
const MAX_ID_LENGTH = 128

/** Fills id slots while a frame is rendered. */
export class IdSource {
  private n = 0
  constructor (private readonly prefix: string, private readonly numberBase: number) {}
  /** A valid envelope id that is also a valid JSON-RPC id: a short string or a safe integer. */
  next (form: 'num' | 'str'): string | number {
    this.n++
    return form === 'num' ? this.numberBase + this.n : `${this.prefix}${this.n}`
  }

  /** An id for an item of an envelope `batch`: answered too, but never tracked. */
  item (): string {
    return `i${this.prefix}${++this.n}`
  }
}

let rendering: IdSource | null = null

/** Where a tracked id goes; becomes a fresh id when the frame is rendered. */
class IdSlot {
  constructor (readonly form: 'num' | 'str') {}
  toJSON (): string | number {
    if (rendering === null) throw new Error('IdSlot rendered outside render()')
    return rendering.next(this.form)
  }
}

/** Where a batch item's id goes. */
class ItemIdSlot {
  toJSON (): string {
    if (rendering === null) throw new Error('ItemIdSlot rendered outside render()')
    return rendering.item()
  }
}

/**
 * JSON text that `JSON.stringify` cannot produce: non-finite numbers,
 * lone surrogates, escaped spellings of forbidden keys. A string
 * `@@RAW<n>@@` in the rendered text is replaced by RAW_JSON[n].
 */
const RAW_JSON = [
  '1e400', '-1e999', '1E+309', '-0', '123456789012345678901234567890', '9007199254740993', '1.0', '1e2',
  '"\\ud800"', '"\\udfff\\ud800x"', '"\\u0000"', '"__pro\\u0074o__"', '"\\u005f\\u005fproto\\u005f\\u005f"',
  '"con\\u0073tructor"', '"proto\\u0074ype"'
] as const
const RAW_VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as const
const RAW_PROTO_KEY = [11, 12] as const
const RAW_CONSTRUCTOR_KEY = 13
const RAW_PROTOTYPE_KEY = 14
const rawMarker = (n: number): string => `@@RAW${n}@@`
const rawPattern = /"@@RAW(\d+)@@"/g

type TextMutation =
  | { kind: 'truncate', at: number }
  | { kind: 'bom' }
  | { kind: 'garbage', text: string }
  | { kind: 'invalidUtf8', at: number, bytes: readonly number[] }
  | { kind: 'oversize' }

/** A frame before its ids are filled. */
export interface FrameTemplate {
  readonly kind: string
  readonly value: unknown
  readonly binary: boolean
  readonly mutation: TextMutation | null
}

/** A frame as it goes on the wire. */
export interface WireFrame {
  readonly kind: string
  /** A string is sent as text; a Buffer as text too (to carry invalid UTF-8) unless `binary`. */
  readonly data: string | Buffer
  readonly binary: boolean
}

/** Fill the template's id slots from `ids` and apply its byte mutation. */
export function render (template: FrameTemplate, ids: IdSource): WireFrame {
  rendering = ids
  let text: string
  try {
    text = JSON.stringify(template.value) ?? 'null'
  } finally {
    rendering = null
  }
  if (text.includes('@@')) {
    text = text.replace(rawPattern, (_m, n: string) => RAW_JSON[Number(n)] as string)
      .replace(deepPattern, (_m, depth: string, shape: string, leaf: string) => deepText(Number(depth), shape, Number(leaf)))
  }
  const mutation = template.mutation
  let data: string | Buffer = text
  if (mutation !== null) {
    switch (mutation.kind) {
      case 'truncate': data = text.slice(0, Math.floor(mutation.at * text.length)); break
      case 'bom': data = '\uFEFF' + text; break
      case 'garbage': data = text + mutation.text; break
      case 'oversize': data = text + ' '.repeat(DEFAULT_MAX_PAYLOAD_BYTES + 1 - Buffer.byteLength(text) + 16); break
      case 'invalidUtf8': {
        const bytes = Buffer.from(text)
        const at = Math.floor(mutation.at * bytes.length)
        data = Buffer.concat([bytes.subarray(0, at), Buffer.from(mutation.bytes), bytes.subarray(at)])
        break
      }
    }
  }
  if (template.binary) data = Buffer.from(data)
  return { kind: template.kind + (mutation === null ? '' : `+${mutation.kind}`), data, binary: template.binary }
}

// ---------------------------------------------------------------------------
// The oracle

/** The key an id is matched by: its JSON text (so -0 and 0 are one id, as on the wire). */
export function idKey (id: unknown): string {
  return JSON.stringify(id)
}

function envelopeId (value: unknown): string | number | undefined {
  if (typeof value === 'string') return value.length >= 1 && value.length <= MAX_ID_LENGTH ? value : undefined
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined
  return undefined
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

const hasOwn = (value: object, key: string): boolean => Object.prototype.hasOwnProperty.call(value, key)

/** Steps 2 to 4 of the order of checks: forbidden keys, depth, non-finite numbers. */
function refusedForSafety (value: unknown, depth: number, maxDepth: number): boolean {
  if (typeof value === 'number') return !Number.isFinite(value)
  if (value === null || typeof value !== 'object') return false
  if (depth >= maxDepth) return true
  if (Array.isArray(value)) return value.some((item) => refusedForSafety(item, depth + 1, maxDepth))
  if (hasOwn(value, '__proto__')) return true
  const ctor = (value as Record<string, unknown>).constructor
  if (hasOwn(value, 'constructor') && ctor !== null && typeof ctor === 'object' && hasOwn(ctor, 'prototype')) return true
  return Object.keys(value).some((key) => refusedForSafety((value as Record<string, unknown>)[key], depth + 1, maxDepth))
}

function jsonRpcIds (value: unknown): string[] {
  const one = (item: unknown): string[] => {
    if (!isPlainObject(item) || !hasOwn(item, 'id')) return []
    const id = item.id
    // null is a readable JSON-RPC id, but every unreadable id is answered as null too: not tracked.
    if (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) return [idKey(id)]
    return []
  }
  return Array.isArray(value) ? value.flatMap(one) : one(value)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** What the server must do with one frame, by docs/protocol.md. */
export type Expectation =
  /**
   * Answer each of these ids (keys by `idKey`) at least once. `batch`: the
   * frame is a JSON-RPC batch on an `auto` route, which the rate limit
   * refuses whole with one envelope error without an id (protocol.md,
   * "frames that fail before they can be told apart").
   */
  | { readonly close: null, readonly ids: readonly string[], readonly batch?: true }
  /** Close the connection with this code; nothing is owed. */
  | { readonly close: number, readonly ids: readonly [], readonly batch?: undefined }

export interface OracleLimits {
  readonly protocol: 'auto' | 'jsonrpc'
  readonly maxPayloadBytes?: number
  readonly maxDepth?: number
}

export function expectedIds (frame: WireFrame, limits: OracleLimits): Expectation {
  const maxPayloadBytes = limits.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH
  const size = typeof frame.data === 'string' ? Buffer.byteLength(frame.data) : frame.data.length
  if (size > maxPayloadBytes) return { close: 1009, ids: [] }
  if (frame.binary) return { close: null, ids: [] }
  let text: string
  if (typeof frame.data === 'string') {
    // A string goes out as UTF-8 (a lone surrogate as U+FFFD), so it is always valid.
    text = frame.data
  } else {
    try {
      text = utf8.decode(frame.data)
    } catch {
      return { close: 1007, ids: [] }
    }
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text.charCodeAt(0) === 0xFEFF ? text.slice(1) : text)
  } catch {
    return { close: null, ids: [] }
  }
  if (refusedForSafety(parsed, 0, maxDepth)) {
    // Refused as a whole; the error carries the frame's id when it is a valid envelope id.
    const id = isPlainObject(parsed) ? envelopeId(parsed.id) : undefined
    return { close: null, ids: id === undefined ? [] : [idKey(id)] }
  }
  if (limits.protocol === 'jsonrpc' || Array.isArray(parsed) || (isPlainObject(parsed) && hasOwn(parsed, 'jsonrpc'))) {
    const ids = jsonRpcIds(parsed)
    return limits.protocol === 'auto' && Array.isArray(parsed) && ids.length > 0 ? { close: null, ids, batch: true } : { close: null, ids }
  }
  if (!isPlainObject(parsed)) return { close: null, ids: [] }
  const id = envelopeId(parsed.id)
  return { close: null, ids: id === undefined ? [] : [idKey(id)] }
}

/** The ids an answer frame (envelope, JSON-RPC response or batch of them) carries. */
export function answeredIds (text: string): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return []
  }
  const one = (item: unknown): string[] => isPlainObject(item) && hasOwn(item, 'id') && item.id !== null ? [idKey(item.id)] : []
  return Array.isArray(parsed) ? parsed.flatMap(one) : one(parsed)
}

// ---------------------------------------------------------------------------
// Message-level generators

const BUILTIN_TYPES = ['ping', 'heartbeat', 'pong', 'heartbeat_ack', 'connect', 'join', 'leave', 'typing_started',
  'typing_stopped', 'user_message', 'start_agent', 'stop_agent', 'client_error', 'batch']
/** Registered by test/helpers/hostile-app.ts. */
export const HOSTILE_APP_TYPES = ['echo', 'quiet', 'throw', 'refuse', 'slow', 'big']
export const HOSTILE_APP_METHODS = ['subtract', 'sum', 'throw', 'slow', 'refuse']
const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'rpc.discover']

const trackedId = fc.oneof(fc.constant(new IdSlot('num')), fc.constant(new IdSlot('str')))

/** Ids no envelope may read: the error carries no id. */
const unreadableEnvelopeId = fc.oneof(
  fc.constant(''),
  fc.oneof({ weight: 9, arbitrary: fc.integer({ min: MAX_ID_LENGTH + 1, max: 1000 }) }, { weight: 1, arbitrary: fc.constant(20_000) }).map((n) => 'x'.repeat(n)),
  fc.constantFrom(2 ** 53, -(2 ** 53), 1e308, -1e20, 1.5, 0.1, Number.MAX_VALUE),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isSafeInteger(d)),
  fc.constantFrom(true, false, null, [], {}, [1], { id: 1 }),
  fc.constant(rawMarker(4)), fc.constant(rawMarker(5)), fc.constant(rawMarker(0))
)

const anyId = fc.oneof({ weight: 6, arbitrary: trackedId }, { weight: 3, arbitrary: unreadableEnvelopeId }, { weight: 2, arbitrary: fc.constant(undefined) })

const shortText = fc.string({ maxLength: 24, unit: 'binary' })
const typeName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...BUILTIN_TYPES, ...HOSTILE_APP_TYPES) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTOTYPE_NAMES) },
  { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: MAX_TYPE_LENGTH, unit: 'binary' }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(MAX_TYPE_LENGTH + 1), 'x'.repeat(5000)) },
  { weight: 1, arbitrary: fc.constantFrom(5, null, true, [], {}, ['ping'], rawMarker(8)) }
)

/** Any JSON value, with the raw pieces JSON.stringify cannot write. */
const jsonish: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(...RAW_VALUES).map(rawMarker) }
)

/**
 * Nesting at and around maxDepth, and far past it. Written as text when the
 * frame is rendered (`@@DEEP<depth>_<A|O>_<leaf>@@`): a value 20 000 levels
 * deep would overflow the stack of JSON.stringify and of fast-check's own
 * printing of counterexamples.
 */
const DEEP_LEAVES = ['0', '"x"', '1e400', 'null', '{}', '[]', '{"__proto__":{}}'] as const
const deepValue = fc.tuple(
  fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: DEFAULT_MAX_DEPTH - 3, max: DEFAULT_MAX_DEPTH + 3 }) },
    { weight: 6, arbitrary: fc.integer({ min: 100, max: 2000 }) },
    { weight: 1, arbitrary: fc.constant(20_000) }
  ),
  fc.constantFrom('A', 'O'),
  fc.integer({ min: 0, max: DEEP_LEAVES.length - 1 })
).map(([depth, shape, leaf]) => `@@DEEP${depth}_${shape}_${leaf}@@`)
const deepPattern = /"@@DEEP(\d+)_([AO])_(\d+)@@"/g

function deepText (depth: number, shape: string, leaf: number): string {
  const [open, close] = shape === 'A' ? ['[', ']'] : ['{"k":', '}']
  return open.repeat(depth) + (DEEP_LEAVES[leaf] as string) + close.repeat(depth)
}

/** An object whose keys include a forbidden one, in any spelling, at any depth. */
const prototypeKeyed = fc.tuple(
  fc.oneof(
    fc.constant({ kind: 'proto', key: '__proto__' }),
    fc.constantFrom(...RAW_PROTO_KEY).map((n) => ({ kind: 'proto', key: rawMarker(n) })),
    fc.constant({ kind: 'ctor', key: 'constructor' }),
    fc.constant({ kind: 'ctor', key: rawMarker(RAW_CONSTRUCTOR_KEY) })
  ),
  jsonish,
  fc.integer({ min: 0, max: 5 })
).map(([{ kind, key }, leaf, depth]) => {
  let value: unknown = kind === 'proto'
    ? { [key]: { admin: true, polluted: leaf } }
    : { [key]: { [rawMarker(RAW_PROTOTYPE_KEY)]: { polluted: leaf } } }
  for (let i = 0; i < depth; i++) value = { nested: value }
  return value
})

/** Payloads shaped for the built-ins and the app's handlers, often almost right. */
const payloadFor = fc.oneof(
  fc.record({ room: fc.oneof(shortText, fc.constantFrom('lobby', 'r1', 'x'.repeat(300), ''), jsonish) }, { requiredKeys: [] }),
  fc.record({ room: fc.constantFrom('lobby', 'r1'), text: fc.oneof(shortText, jsonish, fc.constant('y'.repeat(4001))) }, { requiredKeys: [] }),
  fc.record({ text: fc.oneof(shortText, jsonish) }, { requiredKeys: [] }),
  fc.record({ code: fc.oneof(shortText, fc.constantFrom(...PROTOTYPE_NAMES), jsonish), message: fc.oneof(shortText, jsonish), context: jsonish }, { requiredKeys: [] }),
  fc.record({ input: fc.oneof(shortText, jsonish), runId: fc.oneof(shortText, jsonish) }, { requiredKeys: [] }),
  jsonish
)

/** A `batch` envelope whose items are themselves hostile (untracked ids). */
const batchPayload = fc.array(fc.oneof(
  fc.record({ type: typeName, id: fc.oneof(fc.constant(new ItemIdSlot()), unreadableEnvelopeId, fc.constant(undefined)), payload: payloadFor }, { requiredKeys: ['type'] }),
  jsonish
), { maxLength: 60 }).map((messages) => ({ messages }))

const envelope = fc.record({
  type: typeName,
  id: anyId,
  payload: fc.oneof({ weight: 5, arbitrary: payloadFor }, { weight: 1, arbitrary: batchPayload }, { weight: 1, arbitrary: fc.constant(undefined) }),
  extra: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), jsonish, { maxKeys: 3 }), { nil: undefined })
}).map(({ type, id, payload, extra }) => {
  // Extra top-level fields first: a later "type" or "id" would shadow ours.
  // An extra "__proto__" key stays: it is one more forbidden key.
  const value: Record<string, unknown> = { ...extra }
  value.type = type
  if (id !== undefined) value.id = id
  if (payload !== undefined) value.payload = payload
  return value
})

const jsonRpcRequest = fc.record({
  jsonrpc: fc.oneof({ weight: 6, arbitrary: fc.constant('2.0') }, { weight: 1, arbitrary: fc.constantFrom('1.0', 2, null, '2.0 ', '') }),
  method: fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...HOSTILE_APP_METHODS) },
    { weight: 2, arbitrary: fc.constantFrom(...PROTOTYPE_NAMES) },
    { weight: 1, arbitrary: fc.oneof(shortText, fc.constantFrom(5, null, [], {})) }
  ),
  params: fc.oneof(
    fc.array(fc.oneof(fc.integer(), fc.double(), jsonish), { maxLength: 5 }),
    fc.record({ minuend: fc.oneof(fc.integer(), jsonish), subtrahend: fc.oneof(fc.integer(), jsonish) }, { requiredKeys: [] }),
    fc.constantFrom(null, 'x', 5, true)
  ),
  id: fc.oneof({ weight: 6, arbitrary: trackedId }, { weight: 1, arbitrary: fc.constantFrom(null, true, [], {}, { id: 1 }) })
}, { requiredKeys: ['jsonrpc', 'method'] })

const jsonRpcBatch = fc.oneof(
  fc.constant([]),
  fc.array(fc.oneof({ weight: 5, arbitrary: jsonRpcRequest }, { weight: 1, arbitrary: jsonish }), { minLength: 1, maxLength: 40 })
)

/**
 * Well-formed frames that leave state behind (room memberships, typing
 * indicators, agent runs), so that the hostile frames around them, and the
 * closes they cause, test that every registry is released.
 */
const ROOMS = ['lobby', 'r1']
const stateful = fc.tuple(fc.constantFrom(...ROOMS), anyId, fc.string({ minLength: 1, maxLength: 40 })).chain(([room, id, text]) => fc.constantFrom(
  { type: 'join', id, payload: { room } },
  { type: 'typing_started', id, payload: { room } },
  { type: 'typing_stopped', id, payload: { room } },
  { type: 'user_message', id, payload: { room, text } },
  { type: 'start_agent', id, payload: { input: text } },
  { type: 'start_agent', id, payload: { input: text, room } },
  { type: 'leave', id, payload: { room } },
  { type: 'slow', id }
))

const mutation: fc.Arbitrary<TextMutation | null> = fc.oneof(
  { weight: 40, arbitrary: fc.constant(null) },
  { weight: 3, arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((at) => ({ kind: 'truncate' as const, at })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bom' as const }) },
  { weight: 1, arbitrary: fc.constantFrom('}', ']', ',', ' x', '{}', '\u0000').map((text) => ({ kind: 'garbage' as const, text })) }
)

/** Bytes inserted into a text frame that make it invalid UTF-8 (the connection closes with 1007). */
const invalidUtf8: fc.Arbitrary<TextMutation> = fc.record({
  at: fc.double({ min: 0, max: 1, noNaN: true }),
  // a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, a byte never used, a cut sequence
  bytes: fc.constantFrom([0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF], [0xE2, 0x82])
}).map(({ at, bytes }) => ({ kind: 'invalidUtf8' as const, at, bytes }))

function template (kind: string, value: unknown, mutated: TextMutation | null = null, binary = false): FrameTemplate {
  return { kind, value, binary, mutation: mutated }
}

/**
 * A frame that one connection may send; see the module comment. With
 * `closers`, about 1 frame in 50 is one that closes the connection
 * (invalid UTF-8: 1007; over maxPayloadBytes: 1009).
 */
export function hostileFrame (options: { closers?: boolean } = {}): fc.Arbitrary<FrameTemplate> {
  const arbitraries: Array<fc.WeightedArbitrary<FrameTemplate>> = [
    { weight: 30, arbitrary: fc.tuple(envelope, mutation).map(([v, m]) => template('envelope', v, m)) },
    { weight: 12, arbitrary: stateful.map((v) => template('stateful', v)) },
    { weight: 6, arbitrary: fc.tuple(anyId, deepValue, fc.constantFrom(...HOSTILE_APP_TYPES, 'ping')).map(([id, payload, type]) => template('deep', { type, id, payload })) },
    { weight: 6, arbitrary: fc.tuple(anyId, prototypeKeyed, fc.constantFrom(...HOSTILE_APP_TYPES, 'join', 'ping')).map(([id, payload, type]) => template('prototype-key', { type, id, payload })) },
    { weight: 3, arbitrary: fc.tuple(anyId, prototypeKeyed).map(([id, extra]) => template('prototype-key-top', { ...(extra as object), type: 'echo', id })) },
    { weight: 4, arbitrary: fc.tuple(anyId, fc.constantFrom(...RAW_VALUES).map(rawMarker)).map(([id, n]) => template('number-edge', { type: 'echo', id, payload: { text: 'n', n } })) },
    { weight: 3, arbitrary: jsonish.map((v) => template('not-an-envelope', v)) },
    { weight: 10, arbitrary: fc.tuple(jsonRpcRequest, mutation).map(([v, m]) => template('jsonrpc', v, m)) },
    { weight: 4, arbitrary: jsonRpcBatch.map((v) => template('jsonrpc-batch', v)) },
    { weight: 2, arbitrary: fc.tuple(envelope, mutation).map(([v, m]) => template('binary', v, m, true)) }
  ]
  if (options.closers === true) {
    arbitraries.push({ weight: 1, arbitrary: envelope.map((v) => template('oversize', v, { kind: 'oversize' })) })
    arbitraries.push({ weight: 1, arbitrary: fc.tuple(fc.oneof(envelope, jsonRpcRequest), invalidUtf8).map(([v, m]) => template('invalid-utf8', v, m)) })
  }
  return fc.oneof(...arbitraries)
}

// ---------------------------------------------------------------------------
// Byte-level generators (raw TCP)

export const OPCODE = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xA } as const

export interface RawFrameSpec {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  payload: Buffer
  /** Write this length in the header instead of the payload's own (the payload is then not sent). */
  claimedLength?: bigint
}

/** Encode one client → server frame (masked unless told otherwise). */
export function encodeRawFrame (spec: RawFrameSpec): Buffer {
  const length = spec.claimedLength ?? BigInt(spec.payload.length)
  const head: number[] = [(spec.fin ? 0x80 : 0) | ((spec.rsv & 7) << 4) | (spec.opcode & 0x0F)]
  const maskBit = spec.masked ? 0x80 : 0
  let extended = Buffer.alloc(0)
  if (length < 126n) {
    head.push(maskBit | Number(length))
  } else if (length < 65536n) {
    head.push(maskBit | 126)
    extended = Buffer.alloc(2)
    extended.writeUInt16BE(Number(length))
  } else {
    head.push(maskBit | 127)
    extended = Buffer.alloc(8)
    extended.writeBigUInt64BE(length)
  }
  if (spec.claimedLength !== undefined) return Buffer.concat([Buffer.from(head), extended, spec.masked ? Buffer.from([1, 2, 3, 4]) : Buffer.alloc(0)])
  if (!spec.masked) return Buffer.concat([Buffer.from(head), extended, spec.payload])
  const mask = Buffer.from([0x37, 0xFA, 0x21, 0x3D])
  const body = Buffer.from(spec.payload)
  for (let i = 0; i < body.length; i++) body[i] = (body[i] as number) ^ (mask[i & 3] as number)
  return Buffer.concat([Buffer.from(head), extended, mask, body])
}

/** A byte sequence for one raw connection and what the server must do with it. */
export interface RawScenario {
  readonly kind: string
  readonly bytes: Buffer
  /** The close code the server must send, or null when it must keep the connection open. */
  readonly close: number | null
  /** Ids whose answers must arrive (only when `close` is null). */
  readonly ids: readonly string[]
}

function splitInto (bytes: Buffer, parts: number): Buffer[] {
  const out: Buffer[] = []
  const size = Math.max(1, Math.ceil(bytes.length / parts))
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, i + size))
  return out.length === 0 ? [Buffer.alloc(0)] : out
}

/** A valid message carrying `id`, sent as `parts` fragments with control frames between them. */
function fragmentedMessage (id: string, parts: number, controls: number[]): Buffer {
  const text = Buffer.from(JSON.stringify({ type: 'echo', id, payload: { text: `fragmented ${parts}` } }))
  const pieces = splitInto(text, parts)
  const frames: Buffer[] = []
  pieces.forEach((piece, i) => {
    frames.push(encodeRawFrame({ fin: i === pieces.length - 1, rsv: 0, opcode: i === 0 ? OPCODE.TEXT : OPCODE.CONTINUATION, masked: true, payload: piece }))
    const control = controls[i]
    if (control !== undefined && i < pieces.length - 1) {
      frames.push(encodeRawFrame({ fin: true, rsv: 0, opcode: control, masked: true, payload: Buffer.from('mid') }))
    }
  })
  return Buffer.concat(frames)
}

const closePayload = (code: number, reason: Buffer = Buffer.alloc(0)): Buffer => {
  const out = Buffer.alloc(2 + reason.length)
  out.writeUInt16BE(code)
  reason.copy(out, 2)
  return out
}

/**
 * The bad frame of a scenario and the close code it must earn, by RFC 6455
 * and `ws` (docs/protocol.md#close-codes): 1002 malformed, 1007 invalid
 * UTF-8, 1009 too big.
 */
const badFrame: fc.Arbitrary<{ kind: string, bytes: Buffer, close: number }> = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 7 }), fc.constantFrom(OPCODE.TEXT, OPCODE.BINARY, OPCODE.PING)).map(([rsv, opcode]) => ({
    kind: 'reserved-bits', close: 1002, bytes: encodeRawFrame({ fin: true, rsv, opcode, masked: true, payload: Buffer.from('{"type":"ping","id":1}') })
  })),
  fc.constantFrom(OPCODE.TEXT, OPCODE.PING, OPCODE.CLOSE).map((opcode) => ({
    kind: 'unmasked', close: 1002, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode, masked: false, payload: Buffer.from('{"type":"ping"}') })
  })),
  fc.constantFrom(3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF).map((opcode) => ({
    kind: 'bad-opcode', close: 1002, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode, masked: true, payload: Buffer.from('x') })
  })),
  fc.constantFrom(OPCODE.PING, OPCODE.PONG, OPCODE.CLOSE).map((opcode) => ({
    kind: 'fragmented-control', close: 1002, bytes: encodeRawFrame({ fin: false, rsv: 0, opcode, masked: true, payload: Buffer.from('') })
  })),
  fc.integer({ min: 126, max: 1000 }).map((n) => ({
    kind: 'control-too-long', close: 1002, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.PING, masked: true, payload: Buffer.alloc(n, 0x61) })
  })),
  fc.boolean().map((fin) => ({
    kind: 'orphan-continuation', close: 1002, bytes: encodeRawFrame({ fin, rsv: 0, opcode: OPCODE.CONTINUATION, masked: true, payload: Buffer.from('{}') })
  })),
  fc.constantFrom(OPCODE.TEXT, OPCODE.BINARY).map((opcode) => ({
    kind: 'data-frame-mid-message',
    close: 1002,
    bytes: Buffer.concat([
      encodeRawFrame({ fin: false, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: Buffer.from('{"type":') }),
      encodeRawFrame({ fin: true, rsv: 0, opcode, masked: true, payload: Buffer.from('"ping"}') })
    ])
  })),
  fc.oneof(
    fc.bigInt({ min: BigInt(DEFAULT_MAX_PAYLOAD_BYTES + 1), max: 2n ** 53n - 1n }),
    fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n })
  ).map((claimedLength) => ({
    kind: 'oversize-length', close: 1009, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: Buffer.alloc(0), claimedLength })
  })),
  fc.tuple(fc.constantFrom([0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xFF]), fc.boolean()).map(([bad, fragmented]) => {
    const text = Buffer.concat([Buffer.from('{"type":"echo","payload":{"text":"'), Buffer.from(bad), Buffer.from('"}}')])
    const bytes = fragmented
      ? Buffer.concat(splitInto(text, 3).map((piece, i, all) => encodeRawFrame({ fin: i === all.length - 1, rsv: 0, opcode: i === 0 ? OPCODE.TEXT : OPCODE.CONTINUATION, masked: true, payload: piece })))
      : encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: text })
    return { kind: fragmented ? 'invalid-utf8-fragmented' : 'invalid-utf8', close: 1007, bytes }
  }),
  fc.constantFrom(0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535).map((code) => ({
    kind: 'close-bad-code', close: 1002, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.CLOSE, masked: true, payload: closePayload(code) })
  })),
  fc.constant({ kind: 'close-one-byte', close: 1002, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.CLOSE, masked: true, payload: Buffer.from([0x03]) }) }),
  fc.constant({ kind: 'close-bad-utf8-reason', close: 1007, bytes: encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.CLOSE, masked: true, payload: closePayload(1000, Buffer.from([0xFF, 0xFE])) }) })
)

/**
 * One raw connection: some valid messages (fragmented, with pings and pongs
 * between fragments), then either nothing more or one bad frame; or a close
 * frame in the middle of a fragmented message, which the server answers
 * with its own close.
 */
export function rawScenario (): fc.Arbitrary<{ build: (ids: IdSource) => RawScenario }> {
  const valid = fc.array(fc.tuple(
    fc.integer({ min: 1, max: 40 }),
    fc.array(fc.constantFrom(OPCODE.PING, OPCODE.PONG), { maxLength: 40 })
  ), { maxLength: 4 })
  return fc.tuple(valid, fc.oneof(
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 5, arbitrary: badFrame },
    { weight: 1, arbitrary: fc.constant({ kind: 'close-mid-message', close: 1000, bytes: Buffer.concat([encodeRawFrame({ fin: false, rsv: 0, opcode: OPCODE.TEXT, masked: true, payload: Buffer.from('{"type":"ping",') }), encodeRawFrame({ fin: true, rsv: 0, opcode: OPCODE.CLOSE, masked: true, payload: closePayload(1000) })]) }) }
  )).map(([messages, bad]) => ({
    build (ids: IdSource): RawScenario {
      const tracked: string[] = []
      const parts = messages.map(([parts, controls]) => {
        const id = ids.next('str') as string
        tracked.push(idKey(id))
        return fragmentedMessage(id, parts, controls)
      })
      const kind = `${messages.length === 0 ? '' : `fragmented×${messages.length}`}${bad === null ? '' : (messages.length === 0 ? '' : '+') + bad.kind}` || 'empty'
      return { kind, bytes: Buffer.concat([...parts, ...(bad === null ? [] : [bad.bytes])]), close: bad === null ? null : bad.close, ids: tracked }
    }
  }))
}

/** How many WebSocket frames a client byte sequence holds (a frame whose length runs past the end counts as one). */
export function countClientFrames (bytes: Buffer): number {
  let count = 0
  let at = 0
  while (at + 2 <= bytes.length) {
    count++
    const b1 = bytes[at + 1] as number
    let length = b1 & 0x7F
    let offset = 2
    if (length === 126) {
      if (at + 4 > bytes.length) break
      length = bytes.readUInt16BE(at + 2)
      offset = 4
    } else if (length === 127) {
      if (at + 10 > bytes.length) break
      const long = bytes.readBigUInt64BE(at + 2)
      if (long > BigInt(bytes.length)) break
      length = Number(long)
      offset = 10
    }
    at += offset + ((b1 & 0x80) !== 0 ? 4 : 0) + length
  }
  return count
}
