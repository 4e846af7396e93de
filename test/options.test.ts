import t from 'tap'
import Fastify from 'fastify'
import { wsRouter, resolveEnvironment, environmentPresets, type WsRouterOptions } from '../lib/index.js'
import { buildConfig } from '../lib/options.js'

async function registerWith (options: Record<string, unknown>): Promise<unknown> {
  const app = Fastify()
  app.register(wsRouter, options as WsRouterOptions)
  try {
    await app.ready()
    return undefined
  } catch (err) {
    return err
  } finally {
    await app.close()
  }
}

const bad: Array<[string, Record<string, unknown>, string]> = [
  ['a typo', { maxPayloadByte: 10 }, 'FST_WSR_UNKNOWN_OPTION'],
  ['a negative size', { maxPayloadBytes: -1 }, 'FST_WSR_INVALID_OPTION'],
  ['a string size', { maxPayloadBytes: '64k' }, 'FST_WSR_INVALID_OPTION'],
  ['a fractional depth', { maxDepth: 2.5 }, 'FST_WSR_INVALID_OPTION'],
  ['an unknown policy', { unknownType: 'drop' }, 'FST_WSR_INVALID_OPTION'],
  ['a path without slash', { path: 'ws' }, 'FST_WSR_INVALID_OPTION'],
  ['an unknown environment', { environment: 'prodution' }, 'FST_WSR_INVALID_ENVIRONMENT'],
  ['zero errors allowed', { maxConsecutiveErrors: 0 }, 'FST_WSR_INVALID_OPTION'],
  ['a liveness window shorter than the interval', { heartbeatIntervalMs: 1000, livenessWindowMs: 500 }, 'FST_WSR_INVALID_OPTION'],
  ['a non-function authenticate', { authenticate: 'yes' }, 'FST_WSR_INVALID_OPTION'],
  ['a bad log level', { sendFailureLogLevel: 'loud' }, 'FST_WSR_INVALID_OPTION'],
  ['production without authenticate', { environment: 'production' }, 'FST_WSR_ANONYMOUS_IN_PRODUCTION']
]

for (const [what, options, code] of bad) {
  t.test(`ready() rejects ${what} with ${code}`, async (t) => {
    const err = await registerWith(options)
    t.match(err, { code }, String((err as Error | undefined)?.message))
  })
}

t.test('the error names the option and what it got', async (t) => {
  const err = await registerWith({ maxPayloadBytes: '64k' }) as Error
  t.match(err.message, /maxPayloadBytes/)
  t.match(err.message, /"64k"/)
})

t.test('defaults, presets and overrides resolve into a frozen config', async (t) => {
  const config = buildConfig({}, {})
  t.equal(config.environment, 'development')
  t.equal(config.path, '/ws')
  t.equal(config.maxPayloadBytes, 64 * 1024)
  t.equal(config.maxDepth, 32)
  t.equal(config.unknownType, 'ack')
  t.equal(config.maxConsecutiveErrors, 5)
  t.equal(config.heartbeatIntervalMs, environmentPresets.development.heartbeatIntervalMs)
  t.ok(Object.isFrozen(config))
  const overridden = buildConfig({ environment: 'production', heartbeatIntervalMs: 5000, livenessWindowMs: 8000, exposeErrorMessages: true }, {})
  t.equal(overridden.heartbeatIntervalMs, 5000)
  t.equal(overridden.exposeErrorMessages, true, 'an explicit option beats the preset')
  t.equal(overridden.validateOutbound, false, 'untouched preset values stay')
})

t.test('environment resolution', async (t) => {
  t.equal(resolveEnvironment(undefined, {}).name, 'development', 'nothing set → development')
  t.equal(resolveEnvironment(undefined, { NODE_ENV: 'production' }).name, 'production')
  t.equal(resolveEnvironment(undefined, { NODE_ENV: 'production', ENVIRONMENT: 'staging' }).name, 'staging', 'ENVIRONMENT wins over NODE_ENV')
  t.equal(resolveEnvironment(undefined, { NODE_ENV: 'prod' }).name, 'production', 'aliases')
  t.equal(resolveEnvironment(undefined, { NODE_ENV: 'qa-cluster-7' }).name, 'production', 'unknown values take the safe side')
  t.equal(resolveEnvironment('test', { NODE_ENV: 'production' }).name, 'test', 'the option wins')
  const cloudRun = resolveEnvironment(undefined, { NODE_ENV: 'production', K_SERVICE: 'chat' })
  t.equal(cloudRun.cloudRun, true)
  t.ok(cloudRun.preset.heartbeatIntervalMs < 30_000, 'pings inside the 30 s idle cut')
  t.ok(cloudRun.preset.maxConnectionAgeMs > 0 && cloudRun.preset.maxConnectionAgeMs < 300_000, 'connections retire before the 300 s request timeout')
  t.ok(cloudRun.preset.shutdownGraceMs < 10_000, 'shutdown inside the 10 s SIGTERM budget')
  t.equal(resolveEnvironment(undefined, { NODE_ENV: 'production' }).cloudRun, false)
  for (const name of ['production', 'staging'] as const) {
    t.equal(environmentPresets[name].exposeErrorMessages, false)
    t.ok(environmentPresets[name].heartbeatIntervalMs < 30_000)
  }
  for (const name of ['development', 'test'] as const) t.equal(environmentPresets[name].exposeErrorMessages, true)
})

t.test('two routers in two encapsulated contexts are independent', async (t) => {
  const app = Fastify()
  await app.register((await import('@fastify/websocket')).default)
  await app.register(async (child) => {
    await child.register(wsRouter, { path: '/a', environment: 'test' })
    child.wsRouter.on('who', () => ({ router: 'a' }))
  })
  await app.register(async (child) => {
    await child.register(wsRouter, { path: '/b', environment: 'test', unknownType: 'error' })
    child.wsRouter.on('who', () => ({ router: 'b' }))
  })
  await app.ready()
  t.teardown(() => app.close())
  const a = await app.injectWS('/a')
  const b = await app.injectWS('/b')
  const read = (ws: typeof a, type: string): Promise<{ type: string, payload: { router?: string, code?: string } }> => new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      const frame = JSON.parse(data.toString())
      if (frame.type === type) {
        ws.off('message', onMessage)
        resolve(frame)
      }
    }
    ws.on('message', onMessage)
  })
  const fromA = read(a, 'who_result')
  a.send(JSON.stringify({ type: 'who', id: 1 }))
  const fromB = read(b, 'who_result')
  b.send(JSON.stringify({ type: 'who', id: 1 }))
  t.equal((await fromA).payload.router, 'a')
  t.equal((await fromB).payload.router, 'b')
  const unknownOnB = read(b, 'error')
  b.send(JSON.stringify({ type: 'nope', id: 2 }))
  t.equal((await unknownOnB).payload.code, 'UNKNOWN_TYPE', 'b has its own unknownType policy')
  a.terminate()
  b.terminate()
})

t.test('registering the same type twice needs override', async (t) => {
  const app = Fastify()
  await app.register(wsRouter, { environment: 'test' })
  t.teardown(() => app.close())
  t.throws(() => app.wsRouter.on('ping', () => ({})), { code: 'FST_WSR_DUPLICATE_HANDLER' })
  t.doesNotThrow(() => app.wsRouter.on('ping', { override: true, replyType: 'pong' }, () => ({ custom: true })))
  t.throws(() => app.wsRouter.on('', () => ({})), { code: 'FST_WSR_INVALID_HANDLER' })
  await app.ready()
  t.throws(() => app.wsRouter.on('late', () => ({})), { code: 'FST_WSR_REGISTRY_LOCKED' })
})

t.test('two routers that would each attach @fastify/websocket fail with a coded error', async (t) => {
  const app = Fastify()
  await app.register(async (child) => { await child.register(wsRouter, { path: '/a', environment: 'test' }) })
  app.register(async (child) => { await child.register(wsRouter, { path: '/b', environment: 'test' }) })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_WSR_WEBSOCKET_CONFLICT' })
  await app.close()
})
