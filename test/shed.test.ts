import t from 'tap'
import WebSocket from 'ws'
import { startServer } from './helpers/server.js'
import { waitFor } from './helpers/wait.js'

// Issue 9: a rate-limited frame is refused without being parsed; its id is
// read by a bounded scan of the frame's start (docs/protocol.md, correlation rule).

interface Answer { type: string, id?: unknown, payload: { code?: string } }

async function rawClient (url: string): Promise<{ ws: WebSocket, texts: string[] }> {
  const ws = new WebSocket(url)
  // Frames are kept as text: the test counts the server's JSON.parse calls, not its own.
  const texts: string[] = []
  ws.on('message', (data) => texts.push(data.toString()))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  await waitFor(() => texts.length === 1, 5000, 'connection_established')
  return { ws, texts }
}

t.test('rate-limited frames are answered with their id, and none is parsed', async (t) => {
  const server = await startServer({ rateLimit: { messagesPerSecond: 1, burst: 1 } })
  t.teardown(server.close)
  const { ws, texts } = await rawClient(server.url)
  t.teardown(() => ws.terminate())
  ws.send('{"type":"ping","id":"served"}')
  await waitFor(() => texts.length === 2)
  const frames = [
    '{"type":"ping","id":"a1","payload":{"n":1}}',
    '{ "id" : 42 , "type":"ping"}',
    // The top-level id after a nested one: the nested one is not taken.
    '{"type":"echo","payload":{"id":"inner","list":[{"id":"deeper"}],"s":"\\"id\\":\\"fake\\""},"id":"outer"}',
    // Past the scanned start: answered without an id, as documented.
    `{"type":"echo","payload":{"text":"${'x'.repeat(2000)}"},"id":"late"}`,
    // An id that is not valid is no id.
    '{"type":"ping","id":""}',
    '{"type":"ping","id":1.5}',
    'not json at all, "id":"nope"'
  ]
  const realParse = JSON.parse
  let parses = 0
  const sent = new Set(frames)
  // Only parses of the refused frames count (the test's log sink parses log lines).
  JSON.parse = function countingParse (this: unknown, ...args: Parameters<typeof JSON.parse>) {
    if (sent.has(String(args[0]))) parses++
    return realParse.apply(this, args)
  } as typeof JSON.parse
  try {
    for (const frame of frames) ws.send(frame)
    await waitFor(() => texts.length === 2 + frames.length, 5000, 'every refusal')
  } finally {
    JSON.parse = realParse
  }
  t.equal(parses, 0, 'no refused frame was parsed')
  const answers = texts.slice(2).map((text) => JSON.parse(text) as Answer)
  t.ok(answers.every((a) => a.type === 'error' && a.payload.code === 'RATE_LIMITED'))
  t.same(answers.map((a) => a.id), ['a1', 42, 'outer', undefined, undefined, undefined, undefined])
  t.equal(server.app.wsRouter.getStats().rateLimited, frames.length)
})
