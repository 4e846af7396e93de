import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { context, SpanKind, SpanStatusCode, trace, type SpanContext } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import type { AgentStep } from '../lib/agent-types.js'
import { JsonRpcError, WsRouterError } from '../lib/index.js'
import { startServer, type TestServer } from './helpers/server.js'
import { connect, type TestClient } from './helpers/client.js'
import { waitFor } from './helpers/wait.js'
import { untrackedNode } from './helpers/child-env.js'
import { engineOf } from './helpers/internals.js'

// Issue 13: spans through @opentelemetry/api, recorded here by the SDK's
// in-memory exporter, over real sockets.

const run = promisify(execFile)
const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`

function spans (name?: string): ReadableSpan[] {
  const all = exporter.getFinishedSpans()
  return name === undefined ? all : all.filter((span) => span.name === name)
}

async function spanOf (name: string, match: (span: ReadableSpan) => boolean = () => true): Promise<ReadableSpan> {
  await waitFor(() => spans(name).some(match), 5000, `a finished span "${name}"`)
  return spans(name).find(match) as ReadableSpan
}

const byMessageId = (id: string) => (span: ReadableSpan) => span.attributes['messaging.message.id'] === id

async function open (server: TestServer, user = 'alice'): Promise<TestClient> {
  const client = await connect(`${server.url}?user=${user}`)
  await client.next('connection_established')
  return client
}

t.test('@opentelemetry/api is loaded only when tracing is set', async (t) => {
  const node = (mode: string) => untrackedNode(['--import', 'tsx', 'test/fixtures/tracing-loading.ts', mode])
  const off = node('off')
  const on = node('on')
  t.same(JSON.parse((await run(off.command, off.args, { env: off.env })).stdout), { withTracing: false, loaded: false })
  t.same(JSON.parse((await run(on.command, on.args, { env: on.env })).stdout), { withTracing: true, loaded: true })
})

t.test('the option is checked at registration', async (t) => {
  const Fastify = (await import('fastify')).default
  const { wsRouter } = await import('../lib/index.js')
  const register = async (tracing: unknown): Promise<void> => {
    const app = Fastify()
    try {
      await app.register(wsRouter, { environment: 'test', tracing } as never)
      await app.ready()
    } finally {
      await app.close()
    }
  }
  await t.rejects(register({ tracerProvider: {} }), { code: 'FST_WSR_INVALID_OPTION', message: /tracing\.tracerProvider/ })
  await t.rejects(register({ userID: true }), { code: 'FST_WSR_INVALID_OPTION' })
  await t.rejects(register('yes'), { code: 'FST_WSR_INVALID_OPTION' })
  await t.resolves(register(false))
  await t.resolves(register({ connectionId: true }))
})

t.test('with no SDK registered: no span, no context, the frame path untraced', async (t) => {
  let active: unknown = 'not called'
  const server = await startServer({ tracing: true }, (app) => {
    app.wsRouter.on('look', () => {
      active = trace.getActiveSpan()
      return { ok: true }
    })
  })
  t.teardown(server.close)
  const client = await open(server)
  t.teardown(() => client.ws.terminate())
  client.send({ type: 'look', id: 1, traceparent: TRACEPARENT })
  t.match(await client.next('look_result'), { id: 1, payload: { ok: true } })
  t.equal(active, undefined, 'the handler ran in no span')
  t.equal(engineOf(server.app.wsRouter).tracing?.enabled(), false, 'the router sees no tracer provider')
})

t.test('with the SDK registered', async (t) => {
  // Registered after the router above: the router finds the provider on its next message.
  provider.register()
  t.teardown(async () => { await provider.shutdown() })
  t.beforeEach(() => { exporter.reset() })

  t.test('an envelope gets a process span with the messaging attributes and its outcome', async (t) => {
    const server = await startServer({ tracing: true }, (app) => {
      app.wsRouter.on('echo', (payload) => payload)
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'echo', id: 'e1', payload: { text: 'hi' } })
    await client.next('echo_result')
    const span = await spanOf('process echo')
    t.equal(span.kind, SpanKind.CONSUMER)
    t.same(span.attributes, {
      'messaging.system': 'fastify_ws_router',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'echo',
      'messaging.message.id': 'e1',
      'wsr.outcome': 'ok'
    }, 'no connection or user id unless the app allows them')
    t.equal(span.status.code, SpanStatusCode.UNSET)
    t.equal(span.parentSpanContext, undefined, 'no traceparent: a root span')
  })

  t.test('traceparent and tracestate make the parent; invalid values are ignored, never an error', async (t) => {
    const server = await startServer({ tracing: true }, (app) => {
      app.wsRouter.on('echo', (payload) => payload)
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'echo', id: 'p1', payload: 1, traceparent: TRACEPARENT, tracestate: 'vendor=abc' })
    const invalid: unknown[] = ['garbage', `00-${'0'.repeat(32)}-${PARENT_ID}-01`, 42, { nested: true }, `00-${TRACE_ID}-${PARENT_ID}-01${'x'.repeat(600)}`]
    invalid.forEach((traceparent, i) => client.send({ type: 'echo', id: `bad${i}`, payload: i, traceparent, tracestate: 7 }))
    for (const id of ['p1', ...invalid.map((_, i) => `bad${i}`)]) {
      t.match(await client.next((f) => f.id === id), { type: 'echo_result' }, `${id} answered`)
    }
    const child = await spanOf('process echo', byMessageId('p1'))
    t.equal(child.spanContext().traceId, TRACE_ID)
    t.equal(child.parentSpanContext?.spanId, PARENT_ID)
    t.equal(child.parentSpanContext?.isRemote, true)
    t.equal(child.spanContext().traceState?.get('vendor'), 'abc')
    for (let i = 0; i < invalid.length; i++) {
      const span = await spanOf('process echo', byMessageId(`bad${i}`))
      t.equal(span.parentSpanContext, undefined, `invalid traceparent ${i}: a root span`)
      t.not(span.spanContext().traceId, TRACE_ID)
    }
  })

  t.test('failures carry their error code, pipelined frames one span each', async (t) => {
    const server = await startServer({ tracing: true, maxConsecutiveErrors: 100 }, (app) => {
      app.wsRouter.on('refuse', () => { throw new WsRouterError('NOT_FOUND', 'no such thing') })
      app.wsRouter.on('crash', async () => { throw new Error('kaput') })
      app.wsRouter.on('fine', async (payload: unknown) => payload)
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    const frames = []
    for (let i = 0; i < 30; i++) frames.push({ type: ['refuse', 'crash', 'fine'][i % 3], id: `f${i}`, payload: { i } })
    client.ws.send(frames.map((f) => JSON.stringify(f)).join('\n')) // one unreadable frame (not JSON) first
    for (const frame of frames) client.send(frame)
    for (const frame of frames) await client.next((f) => f.id === frame.id)
    await waitFor(() => spans().filter((s) => s.name.startsWith('process ')).length === 30, 5000, '30 message spans')
    for (const [i, frame] of frames.entries()) {
      const span = await spanOf(`process ${frame.type as string}`, byMessageId(frame.id))
      const expected = [['failed', 'NOT_FOUND'], ['failed', 'HANDLER_ERROR'], ['ok', undefined]][i % 3] as [string, string | undefined]
      t.equal(span.attributes['wsr.outcome'], expected[0], `${frame.id} outcome`)
      t.equal(span.attributes['error.type'], expected[1], `${frame.id} error code`)
      t.equal(span.status.code, expected[1] === undefined ? SpanStatusCode.UNSET : SpanStatusCode.ERROR)
    }
    client.send({ type: 'fine', id: 'late', payload: 'x' })
    await client.next((f) => f.id === 'late')
    t.equal(spans().filter((s) => s.name === 'process fine').length, 11, 'the unreadable frame made no span, the next one did')
  })

  t.test('validation and unknown types are failures with their codes', async (t) => {
    const { Type } = await import('@sinclair/typebox')
    const server = await startServer({ tracing: true, unknownType: 'error' }, (app) => {
      app.wsRouter.on('typed', { schema: Type.Object({ n: Type.Number() }) }, (payload) => payload)
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'typed', id: 'v', payload: { n: 'one' } })
    client.send({ type: 'nobody', id: 'u' })
    await client.next((f) => f.id === 'v')
    await client.next((f) => f.id === 'u')
    t.equal((await spanOf('process typed')).attributes['error.type'], 'VALIDATION_FAILED')
    t.equal((await spanOf('process nobody')).attributes['error.type'], 'UNKNOWN_TYPE')
  })

  t.test('connection and user ids only when the app allows them', async (t) => {
    const server = await startServer({ tracing: { connectionId: true, userId: true } }, (app) => {
      app.wsRouter.on('echo', (payload) => payload)
    })
    t.teardown(server.close)
    const client = await connect(`${server.url}?user=bob`)
    t.teardown(() => client.ws.terminate())
    const hello = await client.next('connection_established')
    client.send({ type: 'echo', id: 1, payload: 'x' })
    await client.next('echo_result')
    const span = await spanOf('process echo')
    t.equal(span.attributes['wsr.connection.id'], hello.payload.connectionId)
    t.equal(span.attributes['user.id'], 'bob')
  })

  t.test('JSON-RPC: one span per request, notifications and batch items included', async (t) => {
    const server = await startServer({ tracing: true, protocol: 'jsonrpc' }, (app) => {
      app.wsRouter.method('add', {}, (params) => (params as number[]).reduce((a, b) => a + b, 0))
      app.wsRouter.method('deny', {}, async () => { throw new JsonRpcError(-32010, 'denied') })
    })
    t.teardown(server.close)
    const client = await connect(server.url)
    t.teardown(() => client.ws.terminate())
    const answers: unknown[] = []
    client.ws.on('message', (data) => answers.push(JSON.parse(data.toString())))
    client.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'add', params: [1, 2], id: 7, traceparent: TRACEPARENT }))
    client.ws.send(JSON.stringify({ jsonrpc: '2.0', method: 'deny' })) // a notification: never answered, still traced
    client.ws.send(JSON.stringify([{ jsonrpc: '2.0', method: 'add', params: [3], id: 'b1' }, { jsonrpc: '2.0', method: 'missing', id: 'b2' }]))
    client.ws.send(JSON.stringify({ jsonrpc: '1.0', method: 'add', params: [1], id: 9 }))
    await waitFor(() => answers.length === 3, 5000, 'three answers')
    t.same(answers[0], { jsonrpc: '2.0', result: 3, id: 7 })
    await waitFor(() => spans().length === 5, 5000, 'five spans')
    t.equal((await spanOf('process add', (s) => s.attributes['rpc.jsonrpc.request_id'] === '9')).attributes['error.type'], 'jsonrpc:-32600', 'an invalid request with a method name: its span ends too')
    const add = await spanOf('process add', (s) => s.attributes['rpc.jsonrpc.request_id'] === '7')
    t.match(add.attributes, { 'messaging.destination.name': 'add', 'rpc.system': 'jsonrpc', 'rpc.method': 'add', 'wsr.outcome': 'ok' })
    t.equal(add.parentSpanContext?.spanId, PARENT_ID, 'the request object\'s traceparent is the parent')
    const deny = await spanOf('process deny')
    t.match(deny.attributes, { 'wsr.outcome': 'failed', 'error.type': 'jsonrpc:-32010', 'rpc.jsonrpc.error_code': -32010 })
    t.equal(deny.status.code, SpanStatusCode.ERROR)
    t.equal((await spanOf('process add', (s) => s.attributes['rpc.jsonrpc.request_id'] === 'b1')).attributes['wsr.outcome'], 'ok')
    t.equal((await spanOf('process missing')).attributes['error.type'], 'jsonrpc:-32601')
  })

  t.test('fan-out sends are child spans of the message that made them', async (t) => {
    const server = await startServer({ tracing: true }, (app) => {
      app.wsRouter.on('shout', async (_payload, ctx) => {
        app.wsRouter.join(ctx.connectionId, 'hall')
        await new Promise((resolve) => setTimeout(resolve, 5))
        const first = await app.wsRouter.sendToRoom('hall', 'shouted', {})
        const second = await app.wsRouter.sendToRoom('empty-room', 'shouted', {})
        return { first: first.ok, second: second.ok }
      })
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'shout', id: 's' })
    t.match(await client.next('shout_result'), { payload: { first: true, second: false } })
    const parent = await spanOf('process shout')
    await waitFor(() => spans('send shouted').length === 2, 5000, 'two fan-out spans')
    const [delivered, noTarget] = spans('send shouted') as [ReadableSpan, ReadableSpan]
    for (const span of [delivered, noTarget]) {
      t.equal(span.kind, SpanKind.PRODUCER)
      t.equal(span.parentSpanContext?.spanId, parent.spanContext().spanId, 'child of the message span')
      t.equal(span.spanContext().traceId, parent.spanContext().traceId)
    }
    t.match(delivered.attributes, { 'messaging.operation.type': 'send', 'messaging.destination.name': 'shouted', 'wsr.fanout.target': 'room', 'wsr.fanout.targets': 1, 'wsr.fanout.delivered': 1, 'wsr.outcome': 'ok' })
    t.match(noTarget.attributes, { 'wsr.fanout.targets': 0, 'wsr.outcome': 'failed', 'error.type': 'NO_TARGET' })
  })

  t.test('an agent run gets one span, child of its start_agent message, with its outcome', async (t) => {
    let inner: string | undefined
    async function * agent (input: string): AsyncGenerator<AgentStep, unknown, undefined> {
      inner = trace.getActiveSpan()?.spanContext().spanId
      yield { type: 'thinking', reasoning: 'hmm' }
      if (input === 'fail') throw new WsRouterError('TOOL_FAILED', 'the tool broke')
      return 'done'
    }
    const server = await startServer({ tracing: true, agent, agentName: 'helper' })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'start_agent', id: 'a1', payload: { input: 'go' } })
    await client.next((f) => f.id === 'a1' && f.type === 'agent_completed')
    const message = await spanOf('process start_agent')
    const runSpan = await spanOf('invoke_agent helper')
    t.equal(runSpan.parentSpanContext?.spanId, message.spanContext().spanId)
    t.equal(inner, runSpan.spanContext().spanId, 'the runner runs inside the run span')
    t.match(runSpan.attributes, { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'helper', 'wsr.agent.status': 'completed' })
    t.equal(typeof runSpan.attributes['wsr.agent.run_id'], 'string')
    exporter.reset()
    client.send({ type: 'start_agent', id: 'a2', payload: { input: 'fail' } })
    await client.next((f) => f.id === 'a2' && f.type === 'agent_completed')
    const failed = await spanOf('invoke_agent helper')
    t.match(failed.attributes, { 'wsr.agent.status': 'failed', 'error.type': 'TOOL_FAILED' })
    t.equal(failed.status.code, SpanStatusCode.ERROR)
    t.equal(spans('invoke_agent helper').length, 1, 'one span per run')
  })

  t.test('an explicit tracerProvider option is used instead of the global one', async (t) => {
    const own = new InMemorySpanExporter()
    const ownProvider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(own)] })
    t.teardown(async () => { await ownProvider.shutdown() })
    const server = await startServer({ tracing: { tracerProvider: ownProvider } }, (app) => {
      app.wsRouter.on('echo', (payload) => payload)
    })
    t.teardown(server.close)
    const client = await open(server)
    t.teardown(() => client.ws.terminate())
    client.send({ type: 'echo', id: 1, payload: 'x' })
    await client.next('echo_result')
    await waitFor(() => own.getFinishedSpans().length === 1, 5000, 'a span on the own provider')
    t.equal(spans('process echo').length, 0, 'none on the global one')
  })

  t.test('@fastify/otel: message spans link to the upgrade request\'s span', async (t) => {
    const { FastifyOtelInstrumentation } = await import('@fastify/otel')
    const instrumentation = new FastifyOtelInstrumentation()
    instrumentation.setTracerProvider(provider)
    const Fastify = (await import('fastify')).default
    const { wsRouter } = await import('../lib/index.js')
    const app = Fastify()
    await app.register(instrumentation.plugin())
    await app.register(wsRouter, { environment: 'test', tracing: true })
    let upgrade: SpanContext | undefined
    app.addHook('onRequest', async (request) => { upgrade = request.opentelemetry().span?.spanContext() })
    app.wsRouter.on('echo', (payload) => payload)
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(() => app.close())
    const address = app.server.address() as { port: number }
    const client = await connect(`ws://127.0.0.1:${address.port}/ws?user=alice`)
    t.teardown(() => client.ws.terminate())
    await client.next('connection_established')
    client.send({ type: 'echo', id: 'l1', payload: 'x' })
    await client.next('echo_result')
    const message = await spanOf('process echo')
    // The active span when the socket is adopted is @fastify/otel's route-handler
    // span, a child of the upgrade request's span (which @fastify/otel never
    // ends for a hijacked reply, so it is never exported).
    const handler = await spanOf('handler - wsHandler')
    t.equal(handler.parentSpanContext?.spanId, upgrade?.spanId, 'the handler span is the upgrade request\'s child')
    t.same(message.links.map((link) => link.context.spanId), [handler.spanContext().spanId], 'the message span links to it')
    t.equal(message.links[0]?.context.traceId, upgrade?.traceId, 'in the upgrade request\'s trace')
    t.not(message.spanContext().traceId, upgrade?.traceId, 'the message has its own trace: a connection outlives any one trace')
  })

  t.test('no active context leaks out of a traced message', async (t) => {
    t.equal(trace.getSpan(context.active()), undefined)
  })
})
