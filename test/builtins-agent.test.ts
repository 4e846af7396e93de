import t from 'tap'
import type { AgentRunContext, AgentStep } from '../lib/agent-types.js'
import { WsRouterError } from '../lib/index.js'
import { agentRunsOf } from './helpers/internals.js'
import { startServer } from './helpers/server.js'
import { connect, type Frame, type TestClient } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'

type Steps = AsyncGenerator<AgentStep, unknown, undefined>

/** A promise the test settles by hand. */
function gate (): { promise: Promise<void>, open: () => void } {
  let open = (): void => {}
  const promise = new Promise<void>((resolve) => { open = resolve })
  return { promise, open }
}

/** Wait for the one terminal event of a run. */
async function completed (client: TestClient, runId: string): Promise<Frame> {
  return await client.next((f) => f.type === 'agent_completed' && f.payload.runId === runId)
}

async function startRun (client: TestClient, id: string | number, payload: unknown = { input: 'go' }): Promise<Frame> {
  client.send({ type: 'start_agent', id, payload })
  return await client.next((f) => f.id === id && (f.type === 'agent_started' || f.type === 'error'))
}

t.test('a run streams its steps in order, every event with the request id and the runId', async (t) => {
  let seen: AgentRunContext | undefined
  async function * calculator (input: string, ctx: AgentRunContext): Steps {
    seen = ctx
    yield { type: 'thinking', reasoning: `I should compute ${input}` }
    yield { type: 'tool_start', toolName: 'calculator', parameters: { expression: input } }
    await delay(25)
    yield { type: 'tool_end', toolName: 'calculator', results: { value: 4 } }
    yield { type: 'progress', step: 2, of: 2, runId: 'forged' }
    return { text: 'The answer is 4' }
  }
  const server = await startServer({ agent: calculator })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connect(`${server.url}?user=alice`)
  t.teardown(() => client.ws.terminate())
  await client.next('connection_established')
  client.send({ type: 'join', id: 'j', payload: { room: 'math' } })
  await client.next('joined')

  const started = await startRun(client, 'run-1', { input: '2+2', room: 'math' })
  t.equal(started.type, 'agent_started')
  const runId = started.payload.runId
  t.same(started.payload, { runId, userId: 'alice', room: 'math', agentName: 'calculator' })
  await completed(client, runId)

  const events = client.frames.filter((f) => f.id === 'run-1')
  t.same(events.map((f) => f.type), ['agent_started', 'agent_thinking', 'tool_executing', 'tool_completed', 'agent_progress', 'agent_completed'])
  t.ok(events.every((f) => f.payload.runId === runId), 'every event carries the runId')
  const [, thinking, executing, toolDone, progress, done] = events as Frame[]
  t.same(thinking?.payload, { runId, reasoning: 'I should compute 2+2' })
  t.same(executing?.payload, { runId, toolName: 'calculator', parameters: { expression: '2+2' } })
  t.match(toolDone?.payload, { runId, toolName: 'calculator', results: { value: 4 } })
  t.ok(toolDone?.payload.durationMs >= 20, `durationMs from the matching tool_start (${toolDone?.payload.durationMs})`)
  t.same(progress?.payload, { runId, step: 2, of: 2 }, 'a step cannot claim another run')
  t.same(done?.payload, { runId, status: 'completed', finalResponse: { text: 'The answer is 4' } })

  t.match(seen, { runId, userId: 'alice', room: 'math', connectionId: String })
  t.equal(seen?.signal.aborted, false)
  const stats = router.getStats()
  t.equal(stats.builtins['agent.started'], 1)
  t.equal(stats.builtins['agent.completed'], 1)
  t.same(stats.types.start_agent, { received: 1, handled: 1, failed: 0 })
})

t.test('a ping sent during a run is answered during the run', async (t) => {
  const held = gate()
  let finished = false
  async function * slow (): Steps {
    yield { type: 'thinking', reasoning: 'waiting for the model' }
    await held.promise
    finished = true
    return 'late answer'
  }
  const server = await startServer({ agent: slow })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  const started = await startRun(client, 1)
  await client.next('agent_thinking')
  client.send({ type: 'ping', id: 'p' })
  const pong = await client.next('pong')
  t.equal(pong.id, 'p')
  t.equal(finished, false, 'the run was still going')
  t.notOk(client.frames.some((f) => f.type === 'agent_completed'))
  held.open()
  t.same((await completed(client, started.payload.runId)).payload, { runId: started.payload.runId, status: 'completed', finalResponse: 'late answer' })
})

t.test('stop_agent cancels a run: its signal fires, its finally runs, the stop is acked', async (t) => {
  let abortReason: unknown
  let cleanedUp = 0
  async function * listens (_input: string, ctx: AgentRunContext): Steps {
    try {
      yield { type: 'thinking', reasoning: 'long job' }
      await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => { abortReason = ctx.signal.reason; reject(ctx.signal.reason) }))
      return 'unreachable'
    } finally {
      cleanedUp++
    }
  }
  async function * ignoresSignal (): Steps {
    // Never looks at its signal: the run must end anyway, and the generator be closed at its next yield.
    try {
      for (let i = 0; ; i++) {
        yield { type: 'progress', tick: i }
        await delay(10)
      }
    } finally {
      cleanedUp++
    }
  }
  async function * hangs (): Steps {
    yield { type: 'thinking', reasoning: 'stuck' }
    await new Promise(() => {})
    return 'never'
  }
  const server = await startServer({
    agent: (input, ctx) => input === 'ignore' ? ignoresSignal() : input === 'hang' ? hangs() : listens(input, ctx)
  })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())

  const started = await startRun(client, 'r1')
  const runId = started.payload.runId
  await client.next('agent_thinking')
  client.send({ type: 'stop_agent', id: 's1', payload: { runId } })
  const ack = await client.next((f) => f.id === 's1')
  t.same({ type: ack.type, payload: ack.payload }, { type: 'ack', payload: { receivedType: 'stop_agent', handled: true } })
  const done = await completed(client, runId)
  t.same(done.payload, { runId, status: 'cancelled' })
  t.equal(done.id, 'r1')
  t.match(abortReason, { name: 'AbortError' }, 'the runner saw its signal')
  await waitFor(() => cleanedUp === 1, 1000, 'the runner\'s finally')
  t.equal(client.frames.filter((f) => f.type === 'agent_completed').length, 1, 'exactly one terminal event')

  const stubborn = await startRun(client, 'r2', { input: 'ignore' })
  await client.next('agent_progress')
  client.send({ type: 'stop_agent', id: 's2', payload: { runId: stubborn.payload.runId } })
  t.equal((await completed(client, stubborn.payload.runId)).payload.status, 'cancelled')
  await waitFor(() => cleanedUp === 2, 1000, 'the ignoring runner\'s finally, through return()')
  const ticks = client.frames.filter((f) => f.type === 'agent_progress').length
  await delay(50)
  t.equal(client.frames.filter((f) => f.type === 'agent_progress').length, ticks, 'no step after the cancel')

  const hung = await startRun(client, 'r3', { input: 'hang' })
  await client.next((f) => f.type === 'agent_thinking' && f.id === 'r3')
  client.send({ type: 'stop_agent', id: 's4', payload: { runId: hung.payload.runId } })
  t.equal((await completed(client, hung.payload.runId)).payload.status, 'cancelled', 'a runner stuck in a step cannot hold its run')

  client.send({ type: 'stop_agent', id: 's3', payload: { runId } })
  const unknown = await client.next((f) => f.id === 's3')
  t.same({ type: unknown.type, code: unknown.payload.code }, { type: 'error', code: 'NOT_FOUND' }, 'an ended run cannot be stopped')
  const stats = router.getStats().builtins
  t.equal(stats['agent.cancelled'], 3)
  t.equal(agentRunsOf(router)?.size, 0)
})

t.test('another connection cannot stop a run', async (t) => {
  async function * waits (_input: string, ctx: AgentRunContext): Steps {
    yield { type: 'thinking', reasoning: 'x' }
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
    return 'stopped'
  }
  const server = await startServer({ agent: waits })
  t.teardown(server.close)
  const owner = await connect(`${server.url}?user=alice`)
  const other = await connect(`${server.url}?user=alice`)
  t.teardown(() => { owner.ws.terminate(); other.ws.terminate() })
  const started = await startRun(owner, 1)
  other.send({ type: 'stop_agent', id: 'x', payload: { runId: started.payload.runId } })
  t.equal((await other.next('error')).payload.code, 'NOT_FOUND')
  t.equal(agentRunsOf(server.app.wsRouter)?.size, 1)
})

t.test('disconnecting cancels every run of the connection', async (t) => {
  const reasons: unknown[] = []
  async function * waits (_input: string, ctx: AgentRunContext): Steps {
    yield { type: 'thinking', reasoning: 'x' }
    await new Promise((resolve) => ctx.signal.addEventListener('abort', () => { reasons.push(ctx.signal.reason); resolve(undefined) }))
    yield { type: 'thinking', reasoning: 'never sent' }
    return 'never sent either'
  }
  const server = await startServer({ agent: waits })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const client = await connect(server.url)
  const bystander = await connect(server.url)
  t.teardown(() => { client.ws.terminate(); bystander.ws.terminate() })
  await startRun(client, 1)
  await startRun(client, 2)
  const kept = await startRun(bystander, 3)
  t.equal(agentRunsOf(router)?.size, 3)
  client.ws.terminate()
  await waitFor(() => reasons.length === 2, 2000, 'both runners aborted')
  t.match(reasons, [{ name: 'AbortError', message: 'connection closed' }, { name: 'AbortError' }])
  await waitFor(() => agentRunsOf(router)?.size === 1)
  t.equal(agentRunsOf(router)?.connections, 1, 'the closed connection\'s map is gone')
  t.equal(router.getStats().builtins['agent.cancelled'], 2)
  t.notOk(bystander.frames.some((f) => f.type === 'agent_completed'), 'other connections\' runs go on')
  bystander.send({ type: 'stop_agent', id: 's', payload: { runId: kept.payload.runId } })
  t.equal((await completed(bystander, kept.payload.runId)).payload.status, 'cancelled')
  await waitFor(() => agentRunsOf(router)?.connections === 0)
  const warnings = server.logs.filter((line) => line.msg === 'websocket send failed')
  t.equal(warnings.length, 0, 'no send is attempted to the closed connection')
})

t.test('a runner that throws yields agent_error, then agent_completed failed', async (t) => {
  async function * broken (input: string): Steps {
    yield { type: 'thinking', reasoning: 'about to fail' }
    if (input === 'coded') throw new WsRouterError('QUOTA_EXCEEDED', 'Monthly quota reached')
    throw new Error('model exploded: key sk-secret')
  }
  for (const environment of ['test', 'production']) {
    t.test(environment, async (t) => {
      const server = await startServer({ agent: broken, environment, allowAnonymous: true })
      t.teardown(server.close)
      const router = server.app.wsRouter
      const client = await connect(server.url)
      t.teardown(() => client.ws.terminate())
      const started = await startRun(client, 'f')
      const runId = started.payload.runId
      const done = await completed(client, runId)
      const events = client.frames.filter((f) => f.id === 'f').map((f) => f.type)
      t.same(events, ['agent_started', 'agent_thinking', 'agent_error', 'agent_completed'])
      const agentError = client.frames.find((f) => f.type === 'agent_error')
      const message = environment === 'production' ? 'The agent run failed' : 'model exploded: key sk-secret'
      t.same(agentError?.payload, { runId, code: 'AGENT_ERROR', message })
      t.same(done.payload, { runId, status: 'failed', error: { code: 'AGENT_ERROR', message } })
      const logged = server.logs.filter((line) => line.msg === 'agent run failed')
      t.equal(logged.length, 1, 'logged once')
      t.match(logged[0], { level: 50, runId, err: { message: 'model exploded: key sk-secret' } })
      t.equal(router.getStats().builtins['agent.failed'], 1)

      const coded = await startRun(client, 'g', { input: 'coded' })
      const codedDone = await completed(client, coded.payload.runId)
      t.same(codedDone.payload.error, { code: 'QUOTA_EXCEEDED', message: 'Monthly quota reached' }, 'a coded error keeps its code and message')
    })
  }
})

t.test('an event that cannot be sent fails the run instead of leaving a hole', async (t) => {
  let closed = false
  async function * oversized (input: string): Steps {
    try {
      if (input === 'odd') yield { type: 'surprise' } as unknown as AgentStep
      yield { type: 'tool_start', toolName: 'search' }
      yield { type: 'tool_end', toolName: 'search', results: 'x'.repeat(5000) }
      yield { type: 'thinking', reasoning: 'never asked for' }
      return 'never'
    } finally {
      closed = true
    }
  }
  const server = await startServer({ agent: oversized, maxOutboundBytes: 2048 })
  t.teardown(server.close)
  const client = await connect(server.url)
  t.teardown(() => client.ws.terminate())
  const started = await startRun(client, 'big')
  const done = await completed(client, started.payload.runId)
  t.same(client.frames.filter((f) => f.id === 'big').map((f) => f.type), ['agent_started', 'tool_executing', 'agent_error', 'agent_completed'])
  t.same(done.payload.error, { code: 'AGENT_ERROR', message: 'An agent event could not be sent (TOO_LARGE)' })
  t.equal(done.payload.status, 'failed')
  await waitFor(() => closed, 1000, 'the generator closed')
  t.equal(server.app.wsRouter.getStats().sends.failed.TOO_LARGE, 1)

  const odd = await startRun(client, 'odd', { input: 'odd' })
  const oddDone = await completed(client, odd.payload.runId)
  t.same(oddDone.payload.error, { code: 'AGENT_ERROR', message: 'The agent yielded a step of unknown type "surprise"' })
})

t.test('start_agent refusals: NOT_CONFIGURED, OVERLOADED, FORBIDDEN, bad input', async (t) => {
  t.test('no agent configured', async (t) => {
    const server = await startServer({})
    t.teardown(server.close)
    const client = await connect(server.url)
    t.teardown(() => client.ws.terminate())
    const refused = await startRun(client, 'n')
    t.same({ type: refused.type, code: refused.payload.code }, { type: 'error', code: 'NOT_CONFIGURED' })
    await delay(20)
    t.notOk(client.frames.some((f) => f.type.startsWith('agent_')), 'never a fake answer')
    t.equal(server.app.wsRouter.getStats().builtins['agent.started'], undefined)
  })

  t.test('limits and membership', async (t) => {
    const held = gate()
    async function * waits (): Steps {
      await held.promise
      return 'ok'
    }
    const server = await startServer({ agent: waits, maxConcurrentRuns: 2, maxMessageChars: 10 })
    t.teardown(server.close)
    const client = await connect(server.url)
    const other = await connect(server.url)
    t.teardown(() => { client.ws.terminate(); other.ws.terminate() })
    const first = await startRun(client, 1)
    await startRun(client, 2)
    const third = await startRun(client, 3)
    t.same({ type: third.type, code: third.payload.code }, { type: 'error', code: 'OVERLOADED' })
    t.equal((await startRun(other, 4)).type, 'agent_started', 'the limit is per connection')
    held.open()
    await completed(client, first.payload.runId)
    await waitFor(() => agentRunsOf(server.app.wsRouter)?.size === 0)
    t.equal((await startRun(client, 5)).type, 'agent_started', 'a slot frees when a run ends')

    const forbidden = await startRun(client, 6, { input: 'hi', room: 'not-joined' })
    t.equal(forbidden.payload.code, 'FORBIDDEN')
    const tooLong = await startRun(client, 7, { input: 'x'.repeat(11) })
    t.equal(tooLong.payload.code, 'VALIDATION_FAILED')
  })
})

t.test('after runs and disconnects, nothing is left tracked', async (t) => {
  async function * short (input: string, ctx: AgentRunContext): Steps {
    yield { type: 'progress', input }
    if (input === 'wait') await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))
    return input
  }
  const server = await startServer({ agent: short, typingTimeoutMs: 60_000 })
  t.teardown(server.close)
  const router = server.app.wsRouter
  const clients = await Promise.all(Array.from({ length: 6 }, () => connect(server.url)))
  t.teardown(() => { for (const c of clients) c.ws.terminate() })
  await Promise.all(clients.map(async (c, i) => {
    c.send({ type: 'join', id: 'j', payload: { room: 'r' } })
    await c.next('joined')
    c.send({ type: 'typing_started', payload: { room: 'r' } })
    const done = await startRun(c, 'done')
    await completed(c, done.payload.runId)
    await startRun(c, 'wait', { input: 'wait' })
    if (i % 2 === 0) c.ws.terminate()
    else c.send({ type: 'disconnect' })
  }))
  await waitFor(() => router.connectionCount === 0)
  const runs = agentRunsOf(router)
  await waitFor(() => runs?.size === 0)
  t.equal(runs?.connections, 0)
  t.equal(router.getStats().builtins['agent.completed'], 6)
  t.equal(router.getStats().builtins['agent.cancelled'], 6)
})
