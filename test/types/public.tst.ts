// Type tests of the public API (run by tstyche from `npm test`): what a user
// sees in the editor. test/package.test.ts checks the same from the packed
// package; these pin the inference itself.
import { describe, expect, test } from 'tstyche'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import wsRouter, {
  HandlerContext,
  MemoryAdapter,
  SendFailure,
  WsRouter,
  type ConnectionStatus,
  type RouterAdapter,
  type SendResult
} from '../../lib/index.js'
import { RedisAdapter, type RedisAdapterOptions } from '../../lib/redis.js'
import { trace } from '@opentelemetry/api'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'

const app = Fastify()
await app.register(wsRouter, { path: '/ws' })
const echo = Type.Object({ text: Type.String() })
const otelProvider = new NodeTracerProvider()

describe('the plugin', () => {
  test('is a Fastify plugin with typed options', () => {
    expect(app.register(wsRouter, { path: '/ws', maxPayloadBytes: 1024 })).type.not.toRaiseError()
    expect(app.register(wsRouter, { path: 42 })).type.toRaiseError()
    expect(app.register(wsRouter, { unknownType: 'drop' })).type.toRaiseError()
  })

  test('tracing takes an OpenTelemetry TracerProvider, and booleans for the ids', () => {
    expect(app.register(wsRouter, { tracing: { tracerProvider: otelProvider, connectionId: true, userId: false } })).type.not.toRaiseError()
    expect(app.register(wsRouter, { tracing: { tracerProvider: trace.getTracerProvider() } })).type.not.toRaiseError()
    expect(app.register(wsRouter, { tracing: { userId: 'yes' } })).type.toRaiseError()
    expect(app.register(wsRouter, { tracing: { tracerProvider: {} } })).type.toRaiseError()
  })

  test('decorates the instance with app.wsRouter', () => {
    expect(app.wsRouter).type.toBe<WsRouter>()
  })

  test('decorates requests with checkConnection()', () => {
    app.get('/status', async (request) => {
      expect(request.checkConnection()).type.toBe<ConnectionStatus>()
      expect(request.checkConnection().lastSeenMs).type.toBe<number | null>()
    })
  })

  test("types @fastify/websocket's injectWS, which it registers", () => {
    expect(app.injectWS('/ws')).type.toBeAssignableTo<Promise<{ send: (data: string) => void }>>()
  })
})

describe('handlers', () => {
  test('infer the payload type from the schema', () => {
    app.wsRouter.on('echo', { schema: echo }, (payload, ctx) => {
      expect(payload).type.toBe<{ text: string }>()
      expect(ctx).type.toBe<HandlerContext<unknown>>()
    })
  })

  test('refuse a misspelt payload field', () => {
    expect(app.wsRouter.on('echo', { schema: echo }, (payload) => ({ text: payload.txet }))).type.toRaiseError(2339)
  })

  test('without a schema, the payload is unknown', () => {
    app.wsRouter.on('raw', (payload) => {
      expect(payload).type.toBe<unknown>()
    })
  })

  test('infer the reply type from replySchema, for the return value and ctx.reply()', () => {
    const replySchema = Type.Object({ delivered: Type.Boolean() })
    expect(app.wsRouter.on('send', { schema: echo, replySchema }, () => ({ delivered: true }))).type.not.toRaiseError()
    expect(app.wsRouter.on('send', { schema: echo, replySchema }, () => ({ delivered: 'yes' }))).type.toRaiseError()
    app.wsRouter.on('send', { schema: echo, replySchema }, async (_payload, ctx) => {
      expect(ctx).type.toBe<HandlerContext<{ delivered: boolean }>>()
      expect(ctx.reply).type.toBeCallableWith({ delivered: false })
      expect(ctx.reply).type.not.toBeCallableWith({ delivered: 1 })
      return undefined
    })
  })
})

describe('SendResult', () => {
  test('narrows on ok: a failure carries its reason', async () => {
    const result = await app.wsRouter.sendTo('connection-id', 'notice', { text: 'hi' })
    expect(result).type.toBe<SendResult>()
    if (result.ok) {
      expect(result).type.not.toHaveProperty('reason')
    } else {
      expect(result.reason).type.toBe<SendFailure>()
      expect(result.error).type.toBe<Error | undefined>()
    }
  })

  test('its reasons are the SendFailure values', () => {
    expect<SendFailure>().type.toBe<'NOT_OPEN' | 'BACKPRESSURE' | 'TOO_LARGE' | 'SERIALIZE' | 'INVALID_OUTBOUND' | 'WRITE_ERROR' | 'TIMEOUT' | 'DROPPED' | 'ALREADY_ANSWERED'>()
  })
})

describe('adapters', () => {
  test('MemoryAdapter and RedisAdapter (fastify-ws-router/redis) are RouterAdapters', () => {
    expect<MemoryAdapter>().type.toBeAssignableTo<RouterAdapter>()
    expect<RedisAdapter>().type.toBeAssignableTo<RouterAdapter>()
    expect(app.register(wsRouter, { adapter: new RedisAdapter({ redis: 'redis://127.0.0.1:6379' }) })).type.not.toRaiseError()
  })

  test('RedisAdapterOptions needs a URL or an ioredis client', () => {
    expect<RedisAdapterOptions>().type.toHaveProperty('redis')
    expect(new RedisAdapter({ redis: 6379 })).type.toRaiseError()
  })
})
