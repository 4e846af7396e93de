import t from 'tap'
import { issueToken, readToken } from '../../lib/delivery/token.js'
import { numbered } from '../../lib/delivery/session.js'
import { redactUrl } from '../../lib/redact.js'
import { buildConfig, defaultResume } from '../../lib/options.js'
import { MemoryResumeStore } from '../../lib/delivery/memory-store.js'

// Issue 12: the resume token, numbering, redaction and the option, each on its own.

const ID = '3f0c7a3e-8a55-4c8e-9d0e-4b0e6c2f6f11'

t.test('a token names its session and proves it by a secret whose hash alone is kept', async (t) => {
  const issued = issueToken(ID)
  t.match(issued.token, new RegExp(`^${ID}\\.[A-Za-z0-9_-]{32}$`))
  t.notOk(issued.token.includes(issued.secretHash), 'the hash is not in the token')
  t.same(readToken(issued.token), { sessionId: ID, secretHash: issued.secretHash }, 'read back')
  t.not(issueToken(ID).token, issued.token, 'a new secret each time')
  for (const bad of [undefined, 7, '', 'x', `${ID}.`, `${ID}.short`, `${ID}.${'a'.repeat(33)}`, `${ID.toUpperCase()}.${'a'.repeat(32)}`, `not-a-uuid.${'a'.repeat(32)}`, ['array'], `${ID}.${'a'.repeat(32)}\n`]) {
    t.equal(readToken(bad), null, `refused: ${JSON.stringify(bad)}`)
  }
})

t.test('numbering puts seq first and leaves the encoded frame as it was', async (t) => {
  const text = '{"type":"msg","payload":{"n":1},"timestamp":5}'
  t.equal(numbered(text, 42), '{"seq":42,"type":"msg","payload":{"n":1},"timestamp":5}')
  t.same(JSON.parse(numbered(text, 1)), { seq: 1, type: 'msg', payload: { n: 1 }, timestamp: 5 })
})

t.test('the resume token never reaches a logged URL', async (t) => {
  t.equal(redactUrl(`/ws?user=a&resume=${ID}.secret&lastSeq=3`), '/ws?user=a&resume=[REDACTED]&lastSeq=3')
  t.equal(redactUrl('/ws?%72esume=x'), '/ws?%72esume=[REDACTED]', 'however its name is written')
})

t.test('the resume option: off by default, true is the memory store with the documented defaults', async (t) => {
  t.equal(buildConfig({}, {}).resume, false)
  const on = buildConfig({ resume: true }, {}).resume
  if (on === false) throw new Error('resume should be on')
  t.ok(on.store instanceof MemoryResumeStore)
  t.match(on, { windowMs: 120_000, maxSessions: 10_000, replayRatePerSecond: 2000, agentGraceMs: 120_000, storeTimeoutMs: 5000 })
  t.same(defaultResume, { windowMs: 120_000, maxEvents: 1000, maxBytes: 1024 * 1024, maxSessions: 10_000, replayRatePerSecond: 2000, storeTimeoutMs: 5000 })
  const custom = buildConfig({ resume: { windowMs: 1000, agentGraceMs: 5000 } }, {}).resume
  t.equal(custom !== false && custom.agentGraceMs, 1000, 'the agent grace is capped by the window')
  t.equal(Object.isFrozen(on), true)
})

t.test('the resume option is checked strictly at registration', async (t) => {
  const store = new MemoryResumeStore()
  t.throws(() => buildConfig({ resume: { windowMs: 0 } }, {}), { code: 'FST_WSR_INVALID_OPTION' })
  t.throws(() => buildConfig({ resume: { maxEvnts: 5 } as never }, {}), { code: 'FST_WSR_INVALID_OPTION' }, 'a typo is an error')
  t.throws(() => buildConfig({ resume: 'yes' as never }, {}), { code: 'FST_WSR_INVALID_OPTION' })
  t.throws(() => buildConfig({ resume: { store: {} as never } }, {}), { code: 'FST_WSR_INVALID_OPTION', message: /missing methods: create/ })
  t.throws(() => buildConfig({ resume: { store, maxEvents: 5 } }, {}), { code: 'FST_WSR_INVALID_OPTION', message: /resume\.maxEvents/ }, 'a bound beside a store would be ignored')
  t.throws(() => buildConfig({ resume: true, protocol: 'jsonrpc' }, {}), { code: 'FST_WSR_INVALID_OPTION', message: /jsonrpc/ })
  const given = buildConfig({ resume: { store, maxSessions: 3 } }, {}).resume
  t.equal(given !== false && given.store, store, 'the given store is used')
})
