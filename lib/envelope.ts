import { WireErrorCode } from './errors.js'

/**
 * Wire protocol v1: decode client frames and encode server frames.
 * Decoding returns result objects; it never throws for bad input.
 */

export const PROTOCOL_VERSION = 1
export const MAX_TYPE_LENGTH = 64
export const MAX_ID_LENGTH = 128

export type MessageId = string | number

export type DecodeResult =
  | { readonly ok: true, readonly type: string, readonly id: MessageId | undefined, readonly payload: unknown }
  | { readonly ok: false, readonly code: WireErrorCode, readonly message: string, readonly id: MessageId | undefined }

type Problem = typeof WireErrorCode.FORBIDDEN_KEY | typeof WireErrorCode.MAX_DEPTH_EXCEEDED | typeof WireErrorCode.NON_FINITE_NUMBER | undefined

/**
 * A key that could reach a prototype if a handler merged the value into an
 * object: an own `__proto__` (JSON.parse makes it a plain own property), or
 * a `constructor` object with its own `prototype` (the rule of
 * secure-json-parse, applied to the parsed keys, so escapes such as
 * `\u005f\u005fproto\u005f\u005f` are seen decoded).
 */
function isForbiddenKey (key: string, value: unknown): boolean {
  if (key === '__proto__') return true
  return key === 'constructor' && value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype')
}

/**
 * One walk by value (never by character) for forbidden keys, nesting depth
 * and non-finite numbers: the only pass over a frame besides `JSON.parse`.
 * Recursion is safe: it never goes deeper than `maxDepth`, however deep the
 * input nests, and it allocates nothing.
 */
function findProblem (value: unknown, depth: number, maxDepth: number): Problem {
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : WireErrorCode.NON_FINITE_NUMBER
  if (value === null || typeof value !== 'object') return undefined
  if (depth >= maxDepth) return WireErrorCode.MAX_DEPTH_EXCEEDED
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = findProblem(value[i], depth + 1, maxDepth)
      if (problem !== undefined) return problem
    }
    return undefined
  }
  // JSON.parse output has no inherited enumerable keys.
  for (const key in value) {
    const child = (value as Record<string, unknown>)[key]
    if (isForbiddenKey(key, child)) return WireErrorCode.FORBIDDEN_KEY
    const problem = findProblem(child, depth + 1, maxDepth)
    if (problem !== undefined) return problem
  }
  return undefined
}

/**
 * Forbidden keys anywhere, however deep: the failure path only, so that a
 * forbidden key is reported before depth and numbers, as documented. A loop
 * over a queue, not recursion: the value may nest beyond any stack.
 */
function hasForbiddenKey (root: object): boolean {
  const queue: object[] = [root]
  for (let at = 0; at < queue.length; at++) {
    const node = queue[at] as Record<string, unknown>
    for (const key in node) {
      const child = node[key]
      if (!Array.isArray(node) && isForbiddenKey(key, child)) return true
      if (child !== null && typeof child === 'object') queue.push(child)
    }
  }
  return false
}

function readId (value: unknown): MessageId | undefined | null {
  if (value === undefined) return undefined
  if (typeof value === 'string') return value.length >= 1 && value.length <= MAX_ID_LENGTH ? value : null
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null
  return null
}

/** The frame's id if it is a valid one, for error frames about an otherwise bad frame. */
function salvageId (parsed: unknown): MessageId | undefined {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined
  const id = readId((parsed as { id?: unknown }).id)
  return id ?? undefined
}

/** JSON.parse with a leading BOM stripped; undefined for text that is not JSON (JSON has no undefined). */
function parseJson (text: string): unknown {
  try {
    return JSON.parse(text.charCodeAt(0) === 0xFEFF ? text.slice(1) : text)
  } catch {
    return undefined
  }
}

function fail (code: WireErrorCode, message: string, id?: MessageId): { ok: false, code: WireErrorCode, message: string, id: MessageId | undefined } {
  return { ok: false, code, message, id }
}

/**
 * Parse and check one text frame.
 * Order: JSON syntax, forbidden keys (`__proto__`, `constructor.prototype`),
 * nesting depth, non-finite numbers, then the envelope itself.
 */
export type ParseResult =
  | { readonly ok: true, readonly value: unknown }
  | { readonly ok: false, readonly code: WireErrorCode, readonly message: string, readonly id: MessageId | undefined }

/**
 * Parse one text frame safely. Order: JSON syntax, forbidden keys
 * (`__proto__`, `constructor.prototype`), nesting depth, non-finite numbers.
 */
export function parseFrame (text: string, maxDepth: number): ParseResult {
  const parsed = parseJson(text)
  if (parsed === undefined) return fail(WireErrorCode.INVALID_JSON, 'Frame is not valid JSON')
  if (parsed !== null && typeof parsed === 'object') {
    let problem = findProblem(parsed, 0, maxDepth)
    if (problem === undefined) return { ok: true, value: parsed }
    if (problem !== WireErrorCode.FORBIDDEN_KEY && hasForbiddenKey(parsed)) problem = WireErrorCode.FORBIDDEN_KEY
    if (problem === WireErrorCode.FORBIDDEN_KEY) {
      return fail(problem, 'Frame contains a forbidden key (__proto__ or constructor.prototype)', salvageId(parsed))
    }
    if (problem === WireErrorCode.MAX_DEPTH_EXCEEDED) {
      return fail(problem, `Frame nests deeper than ${maxDepth} levels`, salvageId(parsed))
    }
    return fail(problem, 'Frame contains a number that is not finite', salvageId(parsed))
  }
  if (typeof parsed === 'number' && !Number.isFinite(parsed)) {
    return fail(WireErrorCode.NON_FINITE_NUMBER, 'Frame contains a number that is not finite')
  }
  return { ok: true, value: parsed }
}

/** Parse a frame and read its envelope. */
export function decodeFrame (text: string, maxDepth: number): DecodeResult {
  const parsed = parseFrame(text, maxDepth)
  return parsed.ok ? readEnvelope(parsed.value) : parsed
}

/** Check the envelope of a parsed frame (or of one `batch` item). */
export function readEnvelope (parsed: unknown): DecodeResult {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return fail(WireErrorCode.INVALID_MESSAGE, 'Frame must be a JSON object')
  }
  const envelope = parsed as { type?: unknown, id?: unknown, payload?: unknown }
  const id = readId(envelope.id)
  if (id === null) {
    return fail(WireErrorCode.INVALID_MESSAGE, `"id" must be a string of 1 to ${MAX_ID_LENGTH} characters or a safe integer`)
  }
  const type = envelope.type
  if (typeof type !== 'string' || type.length === 0 || type.length > MAX_TYPE_LENGTH) {
    return fail(WireErrorCode.INVALID_MESSAGE, `"type" must be a string of 1 to ${MAX_TYPE_LENGTH} characters`, id)
  }
  return { ok: true, type, id, payload: envelope.payload }
}

/** A server frame before serialisation. */
export interface OutboundFrame {
  type: string
  id?: MessageId | undefined
  payload?: unknown
  timestamp: number
}

export type EncodeResult =
  | { readonly ok: true, readonly text: string }
  | { readonly ok: false, readonly error: Error }

/**
 * A server frame whose payload was serialised once, ahead of time (a
 * constant refusal): the same text `encodeFrame` gives, without serialising
 * the payload again. Only the id is encoded here.
 */
export function encodeWithPayload (type: string, id: MessageId | undefined, payloadJson: string): string {
  const idPart = id === undefined ? '' : `"id":${JSON.stringify(id)},`
  return `{"type":${JSON.stringify(type)},${idPart}"payload":${payloadJson},"timestamp":${Date.now()}}`
}

/** Serialise a server frame: one `JSON.stringify`, never throws. */
export function encodeFrame (type: string, id: MessageId | undefined, payload: unknown): EncodeResult {
  const frame: OutboundFrame = id === undefined
    ? { type, payload, timestamp: Date.now() }
    : { type, id, payload, timestamp: Date.now() }
  try {
    return { ok: true, text: JSON.stringify(frame) }
  } catch (err) {
    return { ok: false, error: err as Error }
  }
}
