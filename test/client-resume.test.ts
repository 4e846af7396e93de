import t from 'tap'
import type WebSocket from 'ws'
import WebSocketClass from 'ws'
import { createClient, type AgentEvent, type Client, type ResumedInfo, type ResumeFailedInfo, type SeqRange } from '../lib/client/index.js'
import { ManualClock } from './helpers/manual-clock.js'
import { scriptedServer, type ScriptedServer } from './helpers/scripted-server.js'
import { waitFor } from './helpers/wait.js'

/**
 * The client's half of resumable delivery against a scripted server that
 * speaks the wire of docs/delivery.md frame by frame: the resume query,
 * `resumed` (with and without a gap), each `resume_failed` reason, dedupe
 * by `seq`, token rotation, agent runs kept across a resume.
 */

const WINDOW_MS = 120_000

function established (socket: WebSocket, connectionId: string, token: string | null, windowMs = WINDOW_MS): void {
  const payload: Record<string, unknown> = { connectionId, userId: 'u', protocolVersion: 1, heartbeatIntervalMs: 30_000, maxPayloadBytes: 65536 }
  if (token !== null) payload.resume = { token, windowMs }
  socket.send(JSON.stringify({ type: 'connection_established', payload, timestamp: 0 }))
}

function message (socket: WebSocket, seq: number | null, text: string): void {
  const frame: Record<string, unknown> = { type: 'message', payload: { messageId: text, room: 'lobby', userId: 'bob', text, sentAt: 0 }, timestamp: 0 }
  socket.send(JSON.stringify(seq === null ? frame : { seq, ...frame }))
}

/** What the server received on one connection, decoded. */
function record (socket: WebSocket): Array<{ type: string, id?: number, payload?: { room?: string } }> {
  const frames: Array<{ type: string, id?: number, payload?: { room?: string } }> = []
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as { type: string, id?: number, payload?: { room?: string } }
    frames.push(frame)
    // Answer joins as the router does, so the client tracks its rooms.
    if (frame.type === 'join') socket.send(JSON.stringify({ type: 'joined', id: frame.id, payload: { room: frame.payload?.room } }))
  })
  return frames
}

interface Seen {
  texts: string[]
  resumed: ResumedInfo[]
  failed: ResumeFailedInfo[]
  gaps: SeqRange[]
  /** Every client event in order, to check what came before what. */
  order: string[]
}

function watch (client: Client): Seen {
  const seen: Seen = { texts: [], resumed: [], failed: [], gaps: [], order: [] }
  client.on('message', (payload) => { seen.texts.push(payload.text); seen.order.push(`message ${payload.text}`) })
  client.on('resumed', (info) => { seen.resumed.push(info); seen.order.push('resumed') })
  client.on('resume_failed', (failure) => { seen.failed.push(failure); seen.order.push(`resume_failed ${failure.reason}`) })
  client.on('gap', (range) => { seen.gaps.push(range); seen.order.push(`gap ${range.from}-${range.to}`) })
  client.on('state', (state) => { seen.order.push(state) })
  return seen
}

/** A client in room `lobby` on connection 1 (session `s1`, token `t1`) that has processed seq 1..3. */
async function inLobby (t: { teardown: (fn: () => unknown) => void }, server: ScriptedServer): Promise<{ client: Client, seen: Seen, sockets: WebSocket[] }> {
  const sockets: WebSocket[] = []
  server.onConnection = (socket, n) => {
    sockets.push(socket)
    if (n !== 1) return
    record(socket)
    established(socket, 's1', 't1')
  }
  const client = createClient({ url: `${server.url}/ws?user=alice`, WebSocket: WebSocketClass, random: () => 0 })
  t.teardown(() => { client.close() })
  const seen = watch(client)
  await waitFor(() => client.state === 'open', 2000, 'open')
  await client.join('lobby')
  for (let seq = 1; seq <= 3; seq++) message(sockets[0] as WebSocket, seq, `m${seq}`)
  await waitFor(() => seen.texts.length === 3, 2000, 'three messages')
  return { client, seen, sockets }
}

t.test('resumed: the reconnect asks with token and lastSeq; replay overlapping live delivery is shown once; rooms are not joined again', async (t) => {
  const server = await scriptedServer(t, false)
  const { client, seen, sockets } = await inLobby(t, server)
  t.equal(client.lastSeq, 3)
  let second: ReturnType<typeof record> = []
  server.onConnection = (socket) => {
    sockets.push(socket)
    second = record(socket)
    established(socket, 's1', 't1')
    // The replay starts one frame early (3 was processed): dropped.
    for (const seq of [3, 4, 5]) message(socket, seq, `m${seq}`)
    socket.send(JSON.stringify({ type: 'resumed', payload: { replayed: 2, lastSeq: 5 }, timestamp: 0 }))
    // Live delivery overlapping the replay, then new frames; and one without seq (not numbered).
    for (const seq of [5, 6, 4, 7]) message(socket, seq, `m${seq}`)
    message(socket, null, 'unnumbered')
  }
  sockets[0]?.terminate()
  await waitFor(() => seen.texts.includes('unnumbered'), 3000, 'the frames after the resume')
  const query = server.queries[1]
  t.equal(query?.get('resume'), 't1', 'the token of the session')
  t.equal(query?.get('lastSeq'), '3', 'the highest seq processed')
  t.equal(query?.get('user'), 'alice', 'the URL\'s own query is kept')
  t.same(seen.texts, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'unnumbered'], 'every message once, in order')
  t.same(seen.resumed, [{ replayed: 2, lastSeq: 5 }])
  t.same(seen.gaps, [], 'no gap')
  t.same(seen.failed, [])
  t.equal(client.lastSeq, 7)
  t.equal(client.connectionId, 's1')
  t.same([...client.rooms], ['lobby'], 'still in the room')
  t.same(second.filter((f) => f.type === 'join'), [], 'no join after a resume: the server restored the rooms')
  t.same(seen.order.slice(seen.order.indexOf('reconnecting')), ['reconnecting', 'open', 'message m4', 'message m5', 'resumed', 'message m6', 'message m7', 'message unnumbered'])
})

t.test('gap: a jump in seq is reported once, as it happens; a gap after the last replayed frame comes with resumed', async (t) => {
  const server = await scriptedServer(t, false)
  const { client, seen, sockets } = await inLobby(t, server)
  server.onConnection = (socket, n) => {
    sockets.push(socket)
    established(socket, 's1', 't1')
    if (n === 2) {
      // 4..7 were trimmed by the store: the replay starts at 8.
      for (const seq of [8, 9]) message(socket, seq, `m${seq}`)
      socket.send(JSON.stringify({ type: 'resumed', payload: { replayed: 2, lastSeq: 9, gap: { from: 4, to: 7 } }, timestamp: 0 }))
    } else {
      // Nothing held any more: everything after 9 up to 12 is lost.
      socket.send(JSON.stringify({ type: 'resumed', payload: { replayed: 0, lastSeq: 12, gap: { from: 10, to: 12 } }, timestamp: 0 }))
      message(socket, 13, 'm13')
    }
  }
  sockets[0]?.terminate()
  await waitFor(() => seen.resumed.length === 1, 3000, 'first resume')
  t.same(seen.gaps, [{ from: 4, to: 7 }], 'reported once, not again by resumed')
  t.same(seen.order.slice(-5), ['open', 'gap 4-7', 'message m8', 'message m9', 'resumed'], 'the gap is reported when the jump arrives')
  t.same(seen.resumed[0], { replayed: 2, lastSeq: 9, gap: { from: 4, to: 7 } }, 'the app sees the server\'s report too')
  t.equal(client.lastSeq, 9)
  sockets[1]?.terminate()
  await waitFor(() => seen.texts.includes('m13'), 3000, 'second resume')
  t.equal(server.queries[2]?.get('lastSeq'), '9')
  t.same(seen.gaps, [{ from: 4, to: 7 }, { from: 10, to: 12 }])
  t.same(seen.order.slice(-3), ['gap 10-12', 'resumed', 'message m13'], 'a trailing gap is reported before resumed, so resumed sees it known')
  t.equal(client.lastSeq, 13)
})

const reasons: Array<{ reason: ResumeFailedInfo['reason'], code: string }> = [
  { reason: 'expired', code: 'RESUME_EXPIRED' },
  { reason: 'unknown', code: 'RESUME_UNKNOWN' },
  { reason: 'forbidden', code: 'RESUME_FORBIDDEN' },
  { reason: 'busy', code: 'RESUME_BUSY' },
  { reason: 'unavailable', code: 'BROKER_UNAVAILABLE' },
  { reason: 'invalid_seq', code: 'INVALID_RESUME_SEQ' }
]

for (const { reason, code } of reasons) {
  t.test(`resume_failed ${reason}: a fresh session, rooms joined again, seq starts over, the new token is used next`, async (t) => {
    const server = await scriptedServer(t, false)
    const { client, seen, sockets } = await inLobby(t, server)
    const frames: Array<ReturnType<typeof record>> = []
    server.onConnection = (socket, n) => {
      sockets.push(socket)
      frames[n] = record(socket)
      // The third connection resumes the fresh session of the second.
      established(socket, n === 3 ? 's2' : `s${n}`, `t${n}`)
      if (n === 2) {
        socket.send(JSON.stringify({ type: 'resume_failed', payload: { reason, code, message: `resume refused: ${reason}` }, timestamp: 0 }))
        // The fresh session numbers from 1: not a duplicate of the old 1..3.
        message(socket, 1, 'fresh1')
        message(socket, 2, 'fresh2')
      } else {
        socket.send(JSON.stringify({ type: 'resumed', payload: { replayed: 0, lastSeq: 2 }, timestamp: 0 }))
      }
    }
    sockets[0]?.terminate()
    await waitFor(() => seen.texts.includes('fresh2') && (frames[2] ?? []).some((f) => f.type === 'join'), 3000, 'fresh session')
    t.same(seen.failed, [{ reason, code, message: `resume refused: ${reason}` }])
    t.same(seen.resumed, [])
    t.same(seen.gaps, [], 'a fresh session is not a gap: resume_failed is the report')
    t.same(seen.texts, ['m1', 'm2', 'm3', 'fresh1', 'fresh2'])
    t.equal(client.connectionId, 's2')
    t.equal(client.lastSeq, 2)
    t.same(frames[2]?.filter((f) => f.type === 'join').map((f) => f.payload?.room), ['lobby'], 'rooms joined again')
    sockets[1]?.terminate()
    await waitFor(() => seen.resumed.length === 1, 3000, 'resume of the fresh session')
    t.equal(server.queries[2]?.get('resume'), 't2', 'the fresh session\'s token replaced the old one')
    t.equal(server.queries[2]?.get('lastSeq'), '2')
    t.same(frames[3]?.filter((f) => f.type === 'join'), [], 'resumed: no join')
  })
}

t.test('resume: false never asks; a server that offers no resume gets plain reconnects; rooms are joined again', async (t) => {
  for (const variant of ['client opted out', 'server offers nothing'] as const) {
    const server = await scriptedServer(t, false)
    const sockets: WebSocket[] = []
    const frames: Array<ReturnType<typeof record>> = []
    server.onConnection = (socket, n) => {
      sockets.push(socket)
      frames[n] = record(socket)
      established(socket, `s${n}`, variant === 'client opted out' ? `t${n}` : null)
      message(socket, n === 1 ? 5 : null, `hello ${n}`)
    }
    const client = createClient({ url: `${server.url}/ws`, WebSocket: WebSocketClass, random: () => 0, resume: variant !== 'client opted out' })
    const seen = watch(client)
    await waitFor(() => seen.texts.length === 1, 2000)
    await client.join('lobby')
    sockets[0]?.terminate()
    await waitFor(() => (frames[2] ?? []).some((f) => f.type === 'join'), 3000, `${variant}: rejoin`)
    t.equal(server.queries[1]?.get('resume'), null, `${variant}: no resume asked`)
    t.equal(server.queries[1]?.get('lastSeq'), null)
    t.same(seen.texts, ['hello 1', 'hello 2'], `${variant}: delivered`)
    t.same(seen.failed.length + seen.resumed.length, 0)
    client.close()
  }
})

t.test('an agent run waits through a resume and ends with exactly one agent_completed; requests in flight still fail', async (t) => {
  const server = await scriptedServer(t, false)
  const sockets: WebSocket[] = []
  server.onConnection = (socket, n) => {
    sockets.push(socket)
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string, id: number }
      if (frame.type === 'start_agent') {
        socket.send(JSON.stringify({ type: 'agent_started', id: frame.id, seq: 1, payload: { runId: 'r1', agentName: 'demo', startedAt: 0 } }))
        socket.send(JSON.stringify({ type: 'agent_thinking', id: frame.id, seq: 2, payload: { runId: 'r1', reasoning: 'hmm' } }))
      }
    })
    established(socket, 's1', 't1')
    if (n === 1) return
    // The run went on while the client was away: replayed from 2 (overlap), then live.
    socket.send(JSON.stringify({ type: 'agent_thinking', id: 1, seq: 2, payload: { runId: 'r1', reasoning: 'hmm' } }))
    socket.send(JSON.stringify({ type: 'agent_progress', id: 1, seq: 3, payload: { runId: 'r1', stage: 'half', percent: 50 } }))
    socket.send(JSON.stringify({ type: 'resumed', payload: { replayed: 2, lastSeq: 3 } }))
    socket.send(JSON.stringify({ type: 'agent_completed', id: 1, seq: 4, payload: { runId: 'r1', status: 'completed', finalResponse: { text: '42' } } }))
    socket.send(JSON.stringify({ type: 'agent_completed', id: 1, seq: 4, payload: { runId: 'r1', status: 'completed', finalResponse: { text: '42' } } }))
  }
  const client = createClient({ url: `${server.url}/ws`, WebSocket: WebSocketClass, random: () => 0 })
  t.teardown(() => { client.close() })
  await waitFor(() => client.state === 'open', 2000)
  const run = client.startAgent('question')
  const events: AgentEvent[] = []
  const iteration = (async () => { for await (const event of run) events.push(event) })()
  await waitFor(() => events.length === 2, 2000, 'two events before the drop')
  const inFlight = client.request('echo', { text: 'never answered' }).catch((err: unknown) => err)
  await waitFor(() => client.lastSeq === 2, 2000)
  sockets[0]?.terminate()
  t.match(await inFlight, { code: 'DISCONNECTED' }, 'a reply is not replayed: the request fails as before')
  await iteration
  t.same(events.map((e) => e.type), ['agent_started', 'agent_thinking', 'agent_progress', 'agent_completed'], 'each event once, one agent_completed')
  t.equal(run.runId, 'r1')
})

t.test('an agent run fails with DISCONNECTED when the session comes back fresh, or after the window without a connection', async (t) => {
  const server = await scriptedServer(t, false)
  const sockets: WebSocket[] = []
  let refuse = false
  server.onConnection = (socket, n) => {
    sockets.push(socket)
    if (refuse) { socket.close(1011, 'down'); return }
    socket.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string, id: number }
      if (frame.type === 'start_agent') socket.send(JSON.stringify({ type: 'agent_started', id: frame.id, seq: 1, payload: { runId: `r${n}`, agentName: 'demo', startedAt: 0 } }))
    })
    established(socket, `s${n}`, `t${n}`, 5000)
    if (n === 2) socket.send(JSON.stringify({ type: 'resume_failed', payload: { reason: 'expired', code: 'RESUME_EXPIRED', message: 'window passed' } }))
  }
  const clock = new ManualClock()
  const client = createClient({ url: `${server.url}/ws`, WebSocket: WebSocketClass, random: () => 0, clock })
  t.teardown(() => { client.close() })
  await waitFor(() => client.state === 'open', 2000)
  const fresh = client.startAgent('one')
  const freshEnd = (async () => { for await (const event of fresh) t.equal(event.type, 'agent_started') })().catch((err: unknown) => err)
  await waitFor(() => fresh.runId === 'r1', 2000)
  sockets[0]?.terminate()
  await waitFor(() => client.state === 'reconnecting', 2000)
  clock.advance(0)
  t.match(await freshEnd, { code: 'DISCONNECTED', message: /could not be resumed/ })

  await waitFor(() => client.state === 'open', 2000)
  const lonely = client.startAgent('two')
  const lonelyEnd = (async () => { for await (const event of lonely) t.equal(event.type, 'agent_started') })().catch((err: unknown) => err)
  await waitFor(() => lonely.runId === 'r2', 2000)
  refuse = true
  sockets[1]?.terminate()
  await waitFor(() => client.state === 'reconnecting', 2000)
  let settled = false
  lonelyEnd.then(() => { settled = true }, () => {})
  clock.advance(4999)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.notOk(settled, 'kept while the server may still hold the session')
  clock.advance(1)
  t.match(await lonelyEnd, { code: 'DISCONNECTED', message: /not resumed within 5000 ms/ })
  client.close()
  t.equal(clock.pending, 0, 'no timer left')
})
