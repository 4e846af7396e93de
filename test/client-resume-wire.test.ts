import t from 'tap'
import WebSocket from 'ws'
import { createClient, type AgentEvent, type Client, type ResumedInfo, type ResumeFailedInfo, type SeqRange } from '../lib/client/index.js'
import type { AgentStep, WsRouterOptions } from '../lib/index.js'
import { startServer, type TestServer } from './helpers/server.js'
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.js'
import { delay, waitFor } from './helpers/wait.js'

/**
 * The client SDK against the real router with resume on: alice reaches the
 * server through a TCP proxy the test cuts (both ends see the connection
 * die, no close handshake), bob sends to their room directly. What alice's
 * app sees is checked: every message once and in order, `resumed`, `gap`,
 * `resume_failed`, and whether she joined her rooms again.
 */

interface Seen {
  texts: string[]
  resumed: ResumedInfo[]
  failed: ResumeFailedInfo[]
  gaps: SeqRange[]
}

function follow (client: Client): Seen {
  const seen: Seen = { texts: [], resumed: [], failed: [], gaps: [] }
  client.on('message', (payload) => { seen.texts.push(payload.text) })
  client.on('resumed', (info) => { seen.resumed.push(info) })
  client.on('resume_failed', (failure) => { seen.failed.push(failure) })
  client.on('gap', (range) => { seen.gaps.push(range) })
  return seen
}

interface Scene {
  server: TestServer
  proxy: TcpProxy
  alice: Client
  bob: Client
  seen: Seen
  /** bob's message to the room, answered (the server has fanned it out). */
  say: (text: string) => Promise<void>
  /** `join` frames the server has received so far. */
  joins: () => number
}

async function scene (t: { teardown: (fn: () => unknown) => void }, resume: WsRouterOptions['resume'], options: WsRouterOptions = {}): Promise<Scene> {
  const server = await startServer({ ...options, resume })
  t.teardown(server.close)
  const proxy = await startTcpProxy(Number(new URL(server.url).port))
  t.teardown(proxy.close)
  const alice = createClient({ url: `ws://127.0.0.1:${proxy.port}/ws?user=alice`, WebSocket, backoff: { initialMs: 50, maxMs: 200 } })
  const bob = createClient({ url: `${server.url}?user=bob`, WebSocket })
  t.teardown(() => { alice.close(); bob.close() })
  const seen = follow(alice)
  await alice.join('room')
  await bob.join('room')
  return {
    server,
    proxy,
    alice,
    bob,
    seen,
    say: async (text) => { await bob.request('user_message', { room: 'room', text }) },
    joins: () => server.app.wsRouter.getStats().types.join?.received ?? 0
  }
}

async function cut (scene: Scene): Promise<void> {
  await scene.proxy.cut()
  await waitFor(() => scene.alice.state === 'reconnecting', 5000, 'alice notices the drop')
}

t.test('default resume: messages sent while away and during the reconnect arrive once, in order; rooms are not joined again', async (t) => {
  const s = await scene(t, true)
  await s.say('before')
  await waitFor(() => s.seen.texts.length === 1, 5000, 'the first message')
  const sessionId = s.alice.connectionId
  const lastSeqBefore = s.alice.lastSeq
  t.ok(lastSeqBefore > 0, 'the router numbers room messages')
  const joinsBefore = s.joins()

  await cut(s)
  const away = Array.from({ length: 20 }, (_, i) => `away ${i}`)
  for (const text of away) await s.say(text)
  await s.proxy.restore()
  // bob keeps talking while alice reconnects and is replayed to: live delivery overlaps the replay.
  const during = Array.from({ length: 20 }, (_, i) => `during ${i}`)
  for (const text of during) {
    await s.say(text)
    await delay(5)
  }
  await waitFor(() => s.seen.texts.length === 41, 10_000, 'all 41 messages')
  await waitFor(() => s.seen.resumed.length === 1, 5000, 'resumed')
  await delay(100)
  t.same(s.seen.texts, ['before', ...away, ...during], 'each message once, in order')
  t.same(s.seen.failed, [])
  t.same(s.seen.gaps, [])
  t.ok((s.seen.resumed[0]?.replayed ?? 0) >= away.length, `at least the ${away.length} sent while away were replayed (${s.seen.resumed[0]?.replayed})`)
  t.equal(s.alice.connectionId, sessionId, 'the same session')
  t.equal(s.alice.lastSeq, lastSeqBefore + 40, 'one seq per message, no hole')
  t.equal(s.joins(), joinsBefore, 'no join after the resume')
  t.same([...s.alice.rooms], ['room'])
})

t.test('past the store\'s bound: resumed with a gap, reported once; the held messages are delivered', async (t) => {
  const s = await scene(t, { maxEvents: 5 })
  await s.say('before')
  await waitFor(() => s.seen.texts.length === 1, 5000, 'the first message')
  const base = s.alice.lastSeq
  await cut(s)
  const away = Array.from({ length: 12 }, (_, i) => `away ${i}`)
  for (const text of away) await s.say(text)
  await s.proxy.restore()
  await waitFor(() => s.seen.resumed.length === 1, 10_000, 'resumed')
  await delay(100)
  t.same(s.seen.gaps, [{ from: base + 1, to: base + 7 }], 'the 7 trimmed, once')
  t.same(s.seen.texts, ['before', ...away.slice(7)], 'the 5 held, in order')
  t.same(s.seen.resumed[0]?.gap, { from: base + 1, to: base + 7 })
  t.same(s.seen.failed, [])
})

t.test('past the window: resume_failed expired, a fresh session that joins its rooms again and receives again', async (t) => {
  const s = await scene(t, { windowMs: 1000 })
  await s.say('before')
  await waitFor(() => s.seen.texts.length === 1, 5000, 'the first message')
  const oldSession = s.alice.connectionId
  const joinsBefore = s.joins()
  await cut(s)
  await s.say('lost')
  await delay(1500)
  await s.proxy.restore()
  await waitFor(() => s.seen.failed.length === 1 && s.joins() === joinsBefore + 1, 10_000, 'resume_failed and the rejoin')
  t.equal(s.seen.failed[0]?.reason, 'expired')
  t.not(s.alice.connectionId, oldSession, 'a new session')
  t.same(s.seen.resumed, [])
  await s.say('after')
  await waitFor(() => s.seen.texts.includes('after'), 5000, 'a message to the fresh session')
  t.same(s.seen.texts, ['before', 'after'], '"lost" was not delivered: resume_failed is the report')
  t.equal(s.alice.lastSeq, 1, 'the fresh session numbers from 1')
})

t.test('an agent run goes on while its client is away; after the resume the iteration yields the rest and one agent_completed', async (t) => {
  let release!: () => void
  const away = new Promise<void>((resolve) => { release = resolve })
  async function * agent (): AsyncGenerator<AgentStep, unknown, undefined> {
    yield { type: 'thinking', reasoning: 'first' }
    await away
    yield { type: 'thinking', reasoning: 'while away' }
    yield { type: 'tool_start', toolName: 'calculator', parameters: { expression: '1+1' } }
    yield { type: 'tool_end', toolName: 'calculator', results: { value: 2 } }
    return { text: 'two' }
  }
  const s = await scene(t, true, { agent })
  const run = s.alice.startAgent('go')
  const events: AgentEvent[] = []
  const done = (async () => { for await (const event of run) events.push(event) })()
  await waitFor(() => events.length === 2, 5000, 'agent_started and the first thought')
  await cut(s)
  release()
  // The run ends while alice is away: counted once its steps were sent into her session
  // (its agent_completed follows at once, and would arrive live if it came after the replay).
  await waitFor(() => s.server.app.wsRouter.getStats().builtins['agent.completed'] === 1, 5000, 'the run finished on the server')
  await s.proxy.restore()
  await done
  t.same(events.map((e) => e.type), ['agent_started', 'agent_thinking', 'agent_thinking', 'tool_executing', 'tool_completed', 'agent_completed'])
  t.equal(events.filter((e) => e.type === 'agent_completed').length, 1, 'exactly one agent_completed')
  const last = events.at(-1)
  t.equal(last?.type === 'agent_completed' ? last.payload.status : undefined, 'completed')
  // The run's last replayed event ends the iteration; `resumed` follows the replay.
  await waitFor(() => s.seen.resumed.length === 1, 5000, 'resumed after the replay')
  t.ok((s.seen.resumed[0]?.replayed ?? 0) >= 3, `the run's steps made while away were replayed (${s.seen.resumed[0]?.replayed})`)
})

t.test('a newer connection takes the session over (close 4001): the SDK closes for good and does not resume it back', async (t) => {
  const server = await startServer({ resume: true })
  t.teardown(server.close)
  // The token the server gave alice's SDK, read off the wire.
  let token = ''
  class Spy extends WebSocket {
    constructor (url: string | URL, protocols?: string | string[]) {
      super(url, protocols)
      this.on('message', (data) => {
        const frame = JSON.parse(String(data)) as { type: string, payload?: { resume?: { token: string } } }
        if (frame.type === 'connection_established') token = frame.payload?.resume?.token ?? ''
      })
    }
  }
  const alice = createClient({ url: `${server.url}?user=alice`, WebSocket: Spy, backoff: { initialMs: 20, maxMs: 50 } })
  t.teardown(() => alice.close())
  const states: Array<[string, number | undefined]> = []
  alice.on('state', (state, info) => { states.push([state, info.code]) })
  await alice.join('room')
  t.match(token, /\./, 'the SDK was offered a session')

  const newer = new WebSocket(`${server.url}?user=alice&resume=${encodeURIComponent(token)}&lastSeq=0`)
  t.teardown(() => newer.terminate())
  const resumed = await new Promise<string>((resolve) => {
    newer.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string }
      if (frame.type === 'resumed' || frame.type === 'resume_failed') resolve(frame.type)
    })
  })
  t.equal(resumed, 'resumed', 'the newer connection holds the session')
  await waitFor(() => alice.state === 'closed', 5000, 'the SDK to close')
  t.same(states.at(-1), ['closed', 4001], 'closed with 4001')
  await delay(200)
  t.equal(alice.state, 'closed', 'no reconnect, so no resume taking the session back')
  t.equal(server.app.wsRouter.getStats().connections.open, 1, 'only the newer connection is open')
  t.equal(server.app.wsRouter.getStats().resume?.resumed, 1, 'one resume in all')
})
