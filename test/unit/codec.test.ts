import t from 'tap'
import { decodeFrame, encodeFrame, encodeWithPayload, parseFrame, readEnvelope } from '../../lib/envelope.js'

// The wire codec: pure, result objects, never throws.

t.test('decode: a valid envelope, and each refusal with the id when readable', async (t) => {
  t.same(decodeFrame('{"type":"ping","id":1,"payload":{"a":1}}', 32), { ok: true, type: 'ping', id: 1, payload: { a: 1 } })
  t.match(decodeFrame('nope', 32), { ok: false, code: 'INVALID_JSON', id: undefined })
  t.match(decodeFrame('[1]', 32), { ok: false, code: 'INVALID_MESSAGE' })
  t.match(decodeFrame('{"id":"x"}', 32), { ok: false, code: 'INVALID_MESSAGE', id: 'x' })
  t.match(decodeFrame('{"type":"t","id":""}', 32), { ok: false, code: 'INVALID_MESSAGE', id: undefined })
  t.match(decodeFrame('{"type":"t","id":2,"__proto__":{"x":1}}', 32), { ok: false, code: 'FORBIDDEN_KEY', id: 2 })
  t.match(decodeFrame('{"type":"t","id":3,"p":[[[[1]]]]}', 3), { ok: false, code: 'MAX_DEPTH_EXCEEDED', id: 3 })
  t.match(decodeFrame('{"type":"t","id":4,"n":1e400}', 32), { ok: false, code: 'NON_FINITE_NUMBER', id: 4 })
  t.same(parseFrame('null', 32), { ok: true, value: null })
  t.match(readEnvelope({ type: 'x'.repeat(65) }), { ok: false, code: 'INVALID_MESSAGE' })
})

t.test('decode: forbidden keys are found by value, escaped or deep, and reported before depth and numbers', async (t) => {
  t.match(parseFrame('{"id":5,"p":{"\\u005f\\u005fproto\\u005f\\u005f":{}}}', 32), { ok: false, code: 'FORBIDDEN_KEY', id: 5 }, 'escaped __proto__')
  t.match(parseFrame('{"id":6,"p":[{"constructor":{"prototype":{"x":1}}}]}', 32), { ok: false, code: 'FORBIDDEN_KEY', id: 6 }, 'constructor.prototype inside an array')
  t.match(parseFrame('{"id":7,"p":[[[[{"__proto__":1}]]]]}', 3), { ok: false, code: 'FORBIDDEN_KEY', id: 7 }, 'deeper than maxDepth: still a forbidden key')
  t.match(parseFrame('{"id":8,"n":1e400,"p":{"__proto__":1}}', 32), { ok: false, code: 'FORBIDDEN_KEY', id: 8 }, 'before a non-finite number met earlier')
  t.same(parseFrame('{"constructor":{"name":"x"},"a":["__proto__"]}', 32), { ok: true, value: { constructor: { name: 'x' }, a: ['__proto__'] } }, 'a constructor without prototype, or the word as a value, is fine')
  t.same(parseFrame('\uFEFF{"a":1}', 32), { ok: true, value: { a: 1 } }, 'a leading BOM is skipped')
  const deep = '['.repeat(20000) + ']'.repeat(20000)
  t.match(parseFrame(deep, 32), { ok: false, code: 'MAX_DEPTH_EXCEEDED' }, 'very deep nesting: no stack overflow')
})

t.test('encode: one JSON text; the pre-serialised payload gives the same text', async (t) => {
  const encoded = encodeFrame('error', 'a"b', { code: 'RATE_LIMITED', message: 'm' })
  t.ok(encoded.ok)
  const fast = encodeWithPayload('error', 'a"b', JSON.stringify({ code: 'RATE_LIMITED', message: 'm' }))
  const strip = (text: string): unknown => ({ ...JSON.parse(text), timestamp: 0 })
  t.same(strip(fast), strip(encoded.ok ? encoded.text : ''))
  t.same(Object.keys(JSON.parse(fast)), ['type', 'id', 'payload', 'timestamp'], 'same field order')
  t.notOk('id' in JSON.parse(encodeWithPayload('error', undefined, '{}')))
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  t.match(encodeFrame('x', undefined, cyclic), { ok: false })
  t.match(encodeFrame('x', undefined, { n: 10n }), { ok: false })
})
