import { MAX_ID_LENGTH, type MessageId } from './envelope.js'

/**
 * The id of a frame refused before parsing (rate limit), read without
 * parsing it: shedding load must cost less than serving. A bounded scan of
 * the frame's first `ID_SCAN_BYTES` bytes for a top-level `"id"` key (nested
 * objects, arrays and strings are skipped, not searched), whose value must be
 * a valid id: a 1–128-character string without escapes, or a safe integer.
 * Anything else, or an id past the scanned start, is no id: the refusal is
 * then answered without one (docs/protocol.md, correlation rule).
 */
export const ID_SCAN_BYTES = 512

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COLON = 0x3a
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const MINUS = 0x2d
const ZERO = 0x30
const NINE = 0x39

function isSpace (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

export function scanId (data: Buffer): MessageId | undefined {
  const end = Math.min(data.length, ID_SCAN_BYTES)
  let i = skipSpace(data, 0, end)
  // A UTF-8 byte order mark, as JSON.parse callers strip it.
  if (data[i] === 0xef && data[i + 1] === 0xbb && data[i + 2] === 0xbf) i = skipSpace(data, i + 3, end)
  if (data[i] !== OPEN_BRACE) return undefined
  i++
  while (i < end) {
    i = skipSpace(data, i, end)
    if (data[i] !== QUOTE) return undefined
    const keyStart = i + 1
    const keyEnd = stringEnd(data, i, end)
    if (keyEnd === -1) return undefined
    i = skipSpace(data, keyEnd + 1, end)
    if (data[i] !== COLON) return undefined
    i = skipSpace(data, i + 1, end)
    if (keyEnd - keyStart === 2 && data[keyStart] === 0x69 && data[keyStart + 1] === 0x64) return idValue(data, i, end)
    i = skipSpace(data, skipValue(data, i, end), end)
    if (data[i] !== COMMA) return undefined
    i++
  }
  return undefined
}

function skipSpace (data: Buffer, i: number, end: number): number {
  while (i < end && isSpace(data[i] as number)) i++
  return i
}

/** Index of the quote that closes the string opening at `i`; -1 past the end. */
function stringEnd (data: Buffer, i: number, end: number): number {
  for (let j = i + 1; j < end; j++) {
    const c = data[j]
    if (c === BACKSLASH) j++
    else if (c === QUOTE) return j
  }
  return -1
}

/** Index just after the value starting at `i` (string, object, array or scalar); `end` when it does not end in time. */
function skipValue (data: Buffer, i: number, end: number): number {
  const first = data[i]
  if (first === QUOTE) {
    const close = stringEnd(data, i, end)
    return close === -1 ? end : close + 1
  }
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0
    for (let j = i; j < end; j++) {
      const c = data[j]
      if (c === QUOTE) {
        j = stringEnd(data, j, end)
        if (j === -1) return end
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth++
      } else if ((c === CLOSE_BRACE || c === CLOSE_BRACKET) && --depth === 0) {
        return j + 1
      }
    }
    return end
  }
  let j = i
  while (j < end && data[j] !== COMMA && data[j] !== CLOSE_BRACE && !isSpace(data[j] as number)) j++
  return j
}

function idValue (data: Buffer, i: number, end: number): MessageId | undefined {
  const first = data[i]
  if (first === QUOTE) {
    let j = i + 1
    while (j < end && data[j] !== QUOTE) {
      // An escaped id would need decoding: rare, so not read here.
      if (data[j] === BACKSLASH) return undefined
      j++
    }
    if (j >= end) return undefined
    const id = data.toString('utf8', i + 1, j)
    return id.length >= 1 && id.length <= MAX_ID_LENGTH ? id : undefined
  }
  if (first === MINUS || (first !== undefined && first >= ZERO && first <= NINE)) {
    let j = i + 1
    while (j < end && (data[j] as number) >= ZERO && (data[j] as number) <= NINE) j++
    const next = skipSpace(data, j, end)
    // A fraction or an exponent is not an integer id; a number cut by the bound is unknown.
    if (next >= end || (data[next] !== COMMA && data[next] !== CLOSE_BRACE)) return undefined
    const id = Number(data.toString('latin1', i, j))
    return Number.isSafeInteger(id) ? id : undefined
  }
  return undefined
}
