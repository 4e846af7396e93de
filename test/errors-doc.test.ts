// Every code a user can meet (registration errors, wire error codes, send
// failure reasons, close codes) must be documented in docs/errors.md, each
// written literally in backticks. Adding a code without documenting it fails here.
import t from 'tap'
import { readFileSync } from 'node:fs'
import * as errors from '../lib/errors.js'

const docPath = new URL('../docs/errors.md', import.meta.url)
const doc = readFileSync(docPath, 'utf8')

type CodedErrorConstructor = new (...args: string[]) => Error & { code: string }

/** Each `FST_WSR_*` export is an @fastify/error constructor: read the code from an instance. */
function registrationCodes (): Array<{ name: string, code: string }> {
  const found: Array<{ name: string, code: string }> = []
  for (const [name, value] of Object.entries(errors)) {
    if (!name.startsWith('FST_WSR_')) continue
    const ErrorClass = value as unknown as CodedErrorConstructor
    found.push({ name, code: new ErrorClass('a', 'b').code })
  }
  return found
}

function documented (code: string | number): boolean {
  return doc.includes('`' + String(code) + '`')
}

t.test('every FST_WSR_* registration error is documented', async (t) => {
  const found = registrationCodes()
  t.ok(found.length >= 8, `found ${found.length} FST_WSR_* exports`)
  for (const { name, code } of found) {
    t.equal(code, name, `${name} carries its own name as code`)
    t.ok(documented(code), `${code} appears in backticks in docs/errors.md`)
  }
})

t.test('docs/errors.md names no FST_WSR_* code that does not exist', async (t) => {
  const known = new Set(registrationCodes().map(({ code }) => code))
  const mentioned = new Set(doc.match(/FST_WSR_[A-Z0-9_]+/g) ?? [])
  for (const code of mentioned) t.ok(known.has(code), `${code} is exported by lib/errors.ts`)
})

const groups = {
  WireErrorCode: Object.values(errors.WireErrorCode),
  SendFailure: Object.values(errors.SendFailure),
  CloseCode: Object.values(errors.CloseCode),
  // Issue 12: the codes of resume_failed
  ResumeFailure: Object.values(errors.ResumeFailure)
}

for (const [group, codes] of Object.entries(groups)) {
  t.test(`every ${group} value is documented`, async (t) => {
    t.ok(codes.length > 0, `${group} has values`)
    for (const code of codes) t.ok(documented(code), `${code} appears in backticks in docs/errors.md`)
  })
}

t.test('the check fails for a code that is not documented', async (t) => {
  t.notOk(documented('FST_WSR_NOT_A_REAL_CODE'), 'an unknown code is not found')
})
