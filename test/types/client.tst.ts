import { describe, expect, test } from 'tstyche'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import WebSocket from 'ws'
import { defineContract, routeOptions, wsRouter } from '../../lib/index.js'
import { createClient, type AgentEvent, type AgentRun, type Client, type ClientState, type ResumedInfo, type ResumeFailedReason, type ResumeFailedInfo, type SendOutcome, type SeqRange } from '../../lib/client/index.js'
import { connectTestClient, type TestClient } from '../../lib/testing.js'

const contract = defineContract({
  messages: {
    echo: { payload: Type.Object({ text: Type.String() }), reply: Type.Object({ text: Type.String() }) },
    add: { payload: Type.Object({ a: Type.Number(), b: Type.Number() }), reply: Type.Object({ sum: Type.Number() }) },
    untyped: {}
  },
  events: { news: Type.Object({ headline: Type.String() }) }
})
type AppContract = typeof contract

describe('client side', () => {
  const client = createClient<AppContract>({ url: 'ws://localhost/ws', WebSocket })

  test('request is typed by the contract: reply type, payload type, unknown types refused', () => {
    expect(client.request('echo', { text: 'hi' })).type.toBe<Promise<{ text: string }>>()
    expect(client.request('add', { a: 1, b: 2 })).type.toBe<Promise<{ sum: number }>>()
    expect(client.request).type.not.toBeCallableWith('nope', {})
    expect(client.request).type.not.toBeCallableWith('echo', { text: 1 })
    expect(client.request).type.not.toBeCallableWith('echo', { txt: 'x' })
    expect(client.request).type.not.toBeCallableWith('echo')
    expect(client.request).type.toBeCallableWith('echo', { text: 'x' }, { timeoutMs: 5, idempotent: true, signal: new AbortController().signal })
    expect(client.request('untyped', { anything: true })).type.toBe<Promise<unknown>>()
  })

  test('built-in types are typed too', () => {
    expect(client.request('ping')).type.toBe<Promise<{ serverTime: number }>>()
    expect(client.request('connect')).type.toBe<Promise<{ status: 'connected', connectionId: string, userId: string }>>()
    expect(client.request('join', { room: 'lobby' })).type.toBe<Promise<{ room: string }>>()
    expect(client.request).type.not.toBeCallableWith('join', { rooms: 'lobby' })
    expect(client.send('typing_started', { room: 'a' })).type.toBe<SendOutcome>()
  })

  test('listeners get typed payloads; state is its own event', () => {
    client.on('news', (payload) => { expect(payload).type.toBe<{ headline: string }>() })
    client.on('typing', (payload) => { expect(payload.typing).type.toBe<boolean>() })
    client.on('state', (state) => { expect(state).type.toBe<ClientState>() })
    expect(client.on).type.not.toBeCallableWith('nope', () => {})
    expect(client.on('news', () => {})).type.toBe<() => void>()
  })

  test('resume events are typed: resumed, resume_failed with its reasons, gap', () => {
    client.on('resumed', (info) => {
      expect(info).type.toBe<ResumedInfo>()
      expect(info.replayed).type.toBe<number>()
      expect(info.gap).type.toBe<SeqRange | undefined>()
    })
    client.on('resume_failed', (failure) => {
      expect(failure).type.toBe<ResumeFailedInfo>()
      expect(failure.reason).type.toBe<ResumeFailedReason>()
      expect(failure.reason).type.toBe<'expired' | 'unknown' | 'forbidden' | 'busy' | 'unavailable' | 'invalid_seq'>()
    })
    client.on('gap', (range) => { expect(range).type.toBe<{ readonly from: number, readonly to: number }>() })
    expect(client.lastSeq).type.toBe<number>()
    expect(createClient).type.toBeCallableWith({ url: 'ws://x', WebSocket, resume: false })
    expect(createClient).type.not.toBeCallableWith({ url: 'ws://x', WebSocket, resume: 'yes' })
  })

  test('agent runs yield typed events', async () => {
    const run = client.startAgent('go')
    expect(run).type.toBe<AgentRun>()
    for await (const event of run) {
      expect(event).type.toBe<AgentEvent>()
      if (event.type === 'agent_completed') expect(event.payload.status).type.toBe<'completed' | 'failed' | 'cancelled'>()
    }
  })

  test('an untyped client accepts any type with unknown payloads', () => {
    const loose = createClient({ url: 'ws://localhost/ws' })
    expect(loose).type.toBe<Client>()
    expect(loose.request('whatever', { x: 1 })).type.toBe<Promise<unknown>>()
  })

  test('WebSocket must be a WebSocket class', () => {
    expect(createClient).type.not.toBeCallableWith({ url: 'ws://x', WebSocket: 42 })
    expect(createClient).type.not.toBeCallableWith({ WebSocket })
  })
})

describe('server side', () => {
  test('routeOptions infers the handler\'s payload and reply from the contract', async () => {
    const app = Fastify()
    await app.register(wsRouter)
    app.wsRouter.on('echo', routeOptions(contract, 'echo'), (payload) => {
      expect(payload).type.toBe<{ text: string }>()
      return { text: payload.text }
    })
    expect(app.wsRouter.on).type.not.toBeCallableWith('echo', routeOptions(contract, 'echo'), () => ({ text: 1 }))
    expect(routeOptions).type.not.toBeCallableWith(contract, 'nope')
    // The plain form keeps working.
    app.wsRouter.on('plain', { schema: Type.Object({ n: Type.Number() }) }, (payload) => {
      expect(payload).type.toBe<{ n: number }>()
    })
  })

  test('the test client has the same typed API', async () => {
    const app = Fastify()
    const client = await connectTestClient<AppContract>(app)
    expect(client).type.toBe<TestClient<AppContract>>()
    expect(client.request('echo', { text: 'x' })).type.toBe<Promise<{ text: string }>>()
    expect(client.request).type.not.toBeCallableWith('echo', { text: 2 })
  })
})
