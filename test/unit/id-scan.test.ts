import t from 'tap'
import { ID_SCAN_BYTES, scanId } from '../../lib/id-scan.js'

const scan = (text: string): unknown => scanId(Buffer.from(text))

t.test('reads a valid top-level id near the start', async (t) => {
  t.equal(scan('{"type":"ping","id":"abc"}'), 'abc')
  t.equal(scan('{"id":7}'), 7)
  t.equal(scan('{"id":-12 ,"type":"x"}'), -12)
  t.equal(scan(' \n{ "type" : "x" , "id" : "é-ü" }'), 'é-ü')
  t.equal(scan('\uFEFF{"id":"bom"}'), 'bom')
  t.equal(scan('{"type":"x","payload":{"id":"inner","a":[1,{"id":2}],"s":"}\\"id\\":3"},"id":"outer"}'), 'outer', 'nested and quoted ids are skipped')
  t.equal(scan('{"t":true,"n":null,"f":-1.5e3,"id":9}'), 9, 'scalars skipped')
  t.equal(scan('{"i\\u0064":"x","id":"y"}'), 'y', 'an escaped key is not "id"')
})

t.test('anything else is no id', async (t) => {
  for (const text of [
    '', 'null', '[{"id":1}]', '"id"', 'not json "id":1', '{"type":"x"}', '{"id":""}', '{"id":1.5}', '{"id":1e3}',
    '{"id":null}', '{"id":true}', '{"id":{"a":1}}', '{"id":"esc\\"aped"}', `{"id":"${'x'.repeat(129)}"}`,
    '{"id":12345678901234567890}', '{"id":"unterminated', '{"id":12', '{"type":"x" "id":1}', '{"type":"x","payload":{"a":1'
  ]) {
    t.equal(scan(text), undefined, JSON.stringify(text))
  }
})

t.test('the scan is bounded: an id past the first bytes is not read', async (t) => {
  const pad = 'x'.repeat(ID_SCAN_BYTES)
  t.equal(scan(`{"payload":"${pad}","id":"late"}`), undefined)
  t.equal(scan(`{"id":"early","payload":"${pad}"}`), 'early')
})
