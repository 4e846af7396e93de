// Unit tests of the options schema and buildConfig (lib/option-schema.ts,
// lib/options.ts, lib/environment.ts): the defaults come from the schema,
// the presets from environment.ts, explicit options win, and every bad
// input gets its coded error with the same message as before the schema
// was made the one source (the messages are pinned below).
import t from 'tap'
import { buildConfig, defaultOptions } from '../../lib/options.js'
import { optionProperties, optionsWith, OptionsSchema } from '../../lib/option-schema.js'
import { cloudRunOverrides, presets, type EnvironmentName } from '../../lib/environment.js'
import { MemoryAdapter } from '../../lib/adapters/memory.js'

const schemas = optionProperties as unknown as Record<string, Record<string, unknown>>
const names = Object.keys(schemas)
const constantDefaults = optionsWith(optionProperties, 'default')
const presetOptions = optionsWith(optionProperties, 'preset')
const computedOptions = optionsWith(optionProperties, 'computedDefault')
const noDefault = names.filter((name) => !constantDefaults.includes(name) && !presetOptions.includes(name) && !computedOptions.includes(name))
const environments = Object.keys(presets) as EnvironmentName[]

/** The coded error buildConfig throws for these options, or undefined. */
function refusal (options: unknown, env = {}): { code: string, message: string } | undefined {
  try {
    buildConfig(options as never, env)
    return undefined
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message }
  }
}

t.test('every option has exactly one source of its default, or none', async (t) => {
  for (const name of names) {
    const sources = [constantDefaults, presetOptions, computedOptions].filter((list) => list.includes(name))
    t.ok(sources.length <= 1, `${name} has one source`)
  }
  t.same(noDefault, ['authenticate', 'allowedOrigins', 'authorizeJoin', 'onUserMessage', 'agent'], 'the options the config leaves undefined when not given')
  t.same(presetOptions, ['heartbeatIntervalMs', 'livenessWindowMs', 'exposeErrorMessages', 'validateOutbound', 'sendFailureLogLevel', 'maxConnectionAgeMs', 'shutdownGraceMs'])
})

t.test('defaults: nothing given gives the schema defaults, the development preset and the computed values', async (t) => {
  const config = buildConfig({}, {})
  t.same(Object.keys(config).sort(), [...names, 'cloudRun'].sort(), 'every option is a config key, plus cloudRun')
  for (const name of constantDefaults) {
    if (name === 'metrics' || name === 'health') continue
    t.same(config[name as keyof typeof config], schemas[name]?.default, `${name} = the schema default`)
  }
  t.equal(config.metrics, false)
  t.equal(config.health, false)
  for (const name of presetOptions) t.equal(config[name as keyof typeof config], presets.development[name as keyof typeof presets.development], `${name} from the development preset`)
  for (const name of noDefault) t.equal(config[name as keyof typeof config], undefined, `${name} is undefined`)
  t.equal(config.environment, 'development')
  t.equal(config.cloudRun, false)
  t.ok(config.adapter instanceof MemoryAdapter, 'a MemoryAdapter')
  t.not(buildConfig({}, {}).adapter, config.adapter, 'a new MemoryAdapter for each config')
  t.equal(config.agentName, 'agent')
  t.same(config.builtins, { connection: true, rooms: true, typing: true, userMessage: true, agent: true, clientError: true, batch: true })
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.builtins) && Object.isFrozen(config.rateLimit), 'frozen, nested objects too')
  t.ok(Object.isFrozen(defaultOptions))
  // The figures users read in docs/api.md, pinned once here.
  t.match(config, {
    path: '/ws',
    maxPayloadBytes: 65536,
    maxOutboundBytes: 1048576,
    maxDepth: 32,
    sendTimeoutMs: 10000,
    highWaterMarkBytes: 262144,
    unknownType: 'ack',
    maxConsecutiveErrors: 5,
    handlerTimeoutMs: 30000,
    allowAnonymous: false,
    authTimeoutMs: 10000,
    requireOrigin: false,
    maxConnections: 10000,
    maxConnectionsPerUser: 20,
    maxBufferedBytes: 1048576,
    rateLimit: { messagesPerSecond: 100, burst: 200 },
    maxInFlight: 32,
    idleTimeoutMs: 0,
    maxRoomsPerConnection: 100,
    typingThrottleMs: 2000,
    typingTimeoutMs: 5000,
    maxMessageChars: 4000,
    maxConcurrentRuns: 3,
    maxBatchSize: 50,
    legacyAliases: false,
    protocol: 'auto'
  })
})

t.test('undefined counts as not given, at the top and in nested options', async (t) => {
  const config = buildConfig({ maxDepth: undefined, metrics: { prefix: undefined }, health: { readinessPath: undefined }, builtins: { typing: undefined } }, {})
  t.equal(config.maxDepth, 32)
  t.same(config.metrics, { registry: undefined, prefix: 'wsr_', path: '/metrics' })
  t.same(config.health, { livenessPath: '/health/live', readinessPath: '/health/ready' })
  t.equal(config.builtins.typing, true)
})

t.test('given values win over defaults and presets; nested defaults fill the rest', async (t) => {
  const origins = ['https://a.example']
  const agent = async function * summarise (): AsyncGenerator<never> {}
  const registry = { registerMetric () {}, getSingleMetric () {}, removeSingleMetric () {}, metrics: async () => '', contentType: 'text/plain' }
  const config = buildConfig({
    maxDepth: 4,
    exposeErrorMessages: false,
    rateLimit: { messagesPerSecond: 5, burst: 6 },
    allowedOrigins: origins,
    builtins: { typing: false },
    metrics: { registry, path: false },
    health: true,
    agent
  }, {})
  t.equal(config.maxDepth, 4)
  t.equal(config.exposeErrorMessages, false, 'an explicit value beats the development preset')
  t.same(config.rateLimit, { messagesPerSecond: 5, burst: 6 })
  t.same(config.allowedOrigins, origins)
  origins.push('https://late.example')
  t.equal(config.allowedOrigins?.length, 1, 'a copy: later changes to the given array do not reach the config')
  t.equal(config.builtins.typing, false)
  t.equal(config.builtins.rooms, true)
  t.same(config.metrics, { registry, prefix: 'wsr_', path: false })
  t.same(config.health, { livenessPath: '/health/live', readinessPath: '/health/ready' })
  t.equal(config.agentName, 'summarise', "agentName defaults to the runner's name")
  t.equal(buildConfig({ agent, agentName: 'helper' }, {}).agentName, 'helper')
  t.equal(buildConfig({ agent: Object.defineProperty(async function * () {}, 'name', { value: '' }) }, {}).agentName, 'agent', 'an anonymous runner')
  t.equal(buildConfig({ rateLimit: false }, {}).rateLimit, false)
  t.match(buildConfig({ metrics: true }, {}).metrics, { registry: undefined, prefix: 'wsr_', path: '/metrics' })
  const adapter = new MemoryAdapter()
  t.equal(buildConfig({ adapter }, {}).adapter, adapter)
})

t.test('presets: each environment gives its preset, Cloud Run its overrides, explicit options win', async (t) => {
  for (const environment of environments) {
    const preset = presets[environment]
    t.same(Object.keys(preset).sort(), [...presetOptions].sort(), `${environment}: a value for every preset option, nothing else`)
    const config = buildConfig({ environment }, {})
    t.equal(config.environment, environment)
    for (const name of presetOptions) t.equal(config[name as keyof typeof config], preset[name as keyof typeof preset], `${environment}: ${name}`)
    // A preset is a set of option values: each passes the schema as an explicit option.
    t.equal(refusal({ environment, ...preset }), undefined, `${environment}: the preset's values are valid options`)
    const onCloudRun = buildConfig({ environment }, { K_SERVICE: 'chat' })
    t.equal(onCloudRun.cloudRun, true)
    for (const name of presetOptions) {
      const expected = (cloudRunOverrides as Record<string, unknown>)[name] ?? preset[name as keyof typeof preset]
      t.equal(onCloudRun[name as keyof typeof onCloudRun], expected, `${environment} on Cloud Run: ${name}`)
    }
    t.equal(buildConfig({ environment, shutdownGraceMs: 1234 }, { K_SERVICE: 'chat' }).shutdownGraceMs, 1234, 'an explicit option beats the Cloud Run override')
  }
  t.equal(refusal({ ...cloudRunOverrides }), undefined, 'the Cloud Run overrides are valid options')
  t.equal(buildConfig({}, { NODE_ENV: 'production' }).validateOutbound, false, 'the environment variable selects the preset')
  t.equal(buildConfig({ environment: 'PROD' }, {}).environment, 'production', 'aliases, any case')
})

/** Exact messages of each kind of bad input: the schema change must not change them. */
const pinned: Array<[string, unknown, string, string]> = [
  ['not an object', null, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option options: must be an object'],
  ['a string', 'str', 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option options: must be an object'],
  ['a typo', { maxPayloadByte: 1 }, 'FST_WSR_UNKNOWN_OPTION', 'Unknown fastify-ws-router option "maxPayloadByte"'],
  ["Fastify's prefix", { prefix: '/x' }, 'FST_WSR_UNKNOWN_OPTION', 'Unknown fastify-ws-router option "prefix"'],
  ['below the minimum', { maxPayloadBytes: -1 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option maxPayloadBytes: Expected integer to be greater or equal to 1 (got -1)'],
  ['a string number', { maxPayloadBytes: '64k' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option maxPayloadBytes: Expected integer (got "64k")'],
  ['a fraction', { maxDepth: 2.5 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option maxDepth: Expected integer (got 2.5)'],
  ['above the maximum', { maxDepth: 1001 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option maxDepth: Expected integer to be less or equal to 1000 (got 1001)'],
  ['a literal outside the union', { unknownType: 'drop' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option unknownType: Expected union value (got "drop")'],
  ['a path without slash', { path: 'ws' }, 'FST_WSR_INVALID_OPTION', "Invalid fastify-ws-router option path: Expected string to match '^/' (got \"ws\")"],
  ['an empty environment', { environment: '' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option environment: Expected string length greater or equal to 1 (got "")'],
  ['an unknown environment', { environment: 'prodution' }, 'FST_WSR_INVALID_ENVIRONMENT', 'Unknown environment "prodution": expected development, test, staging or production'],
  ['a liveness window under the interval', { heartbeatIntervalMs: 1000, livenessWindowMs: 500 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option livenessWindowMs: must be at least heartbeatIntervalMs (1000)'],
  ['a liveness window under the preset interval', { livenessWindowMs: 500 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option livenessWindowMs: must be at least heartbeatIntervalMs (30000)'],
  ['a non-function hook', { authenticate: 'yes' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option authenticate: Expected function (got "yes")'],
  ['a null hook', { authorizeJoin: null }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option authorizeJoin: Expected function (got null)'],
  ['rateLimit true', { rateLimit: true }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option rateLimit: Expected union value (got true)'],
  ['a zero rate', { rateLimit: { messagesPerSecond: 0, burst: 1 } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option rateLimit: Expected union value (got {"messagesPerSecond":0,"burst":1})'],
  ['a rate limit with an extra key', { rateLimit: { messagesPerSecond: 1, burst: 1, x: 1 } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option rateLimit: Expected union value (got {"messagesPerSecond":1,"burst":1,"x":1})'],
  ['an unknown built-in', { builtins: { typo: true } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option builtins/typo: Unexpected property (got true)'],
  ['a non-boolean switch', { builtins: { typing: 'no' } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option builtins/typing: Expected boolean (got "no")'],
  ['a bad metrics prefix', { metrics: { prefix: '1bad' } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option metrics: Expected union value (got {"prefix":"1bad"})'],
  ['a bad health path', { health: { livenessPath: 'x' } }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option health: Expected union value (got {"livenessPath":"x"})'],
  ['an empty origin', { allowedOrigins: [''] }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option allowedOrigins/0: Expected string length greater or equal to 1 (got "")'],
  ['an origin string', { allowedOrigins: 'https://a' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option allowedOrigins: Expected array (got "https://a")'],
  ['an adapter without methods', { adapter: {} }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option adapter: missing methods: addConnection, removeConnection, join, leave, roomsOf, isMember, roomCount, members, localTargets, publish, presence, onlineUsers, counts, close'],
  ['an adapter name', { adapter: 'memory' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option adapter: Expected object (got "memory")'],
  ['a hard cap under the high-water mark', { maxBufferedBytes: 1000, highWaterMarkBytes: 2000 }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option maxBufferedBytes: must be at least highWaterMarkBytes (2000)'],
  ['a string boolean', { exposeErrorMessages: 'true' }, 'FST_WSR_INVALID_OPTION', 'Invalid fastify-ws-router option exposeErrorMessages: Expected boolean (got "true")']
]

t.test('bad inputs: pinned codes and messages', async (t) => {
  for (const [what, options, code, message] of pinned) t.same(refusal(options), { code, message }, what)
})

t.test('bad inputs: every option refuses a value of the wrong kind, naming itself', async (t) => {
  const wrong = Symbol('wrong')
  for (const name of names) {
    const found = refusal({ [name]: wrong })
    t.equal(found?.code, 'FST_WSR_INVALID_OPTION', name)
    t.equal(found?.message, `Invalid fastify-ws-router option ${name}: ${found?.message.split(': ')[1]?.replace(/ \(got .*$/, '')} (got Symbol(wrong))`, `${name}: names the option and what it got`)
  }
})

t.test('bad inputs: every integer bound of the schema is enforced, and the bound itself accepted', async (t) => {
  // Companions that keep the cross-option checks satisfied at every bound.
  const companions = { heartbeatIntervalMs: 1, livenessWindowMs: 24 * 60 * 60 * 1000, highWaterMarkBytes: 1, maxBufferedBytes: 4 * 1024 ** 3 }
  for (const name of names) {
    const schema = schemas[name] as { type?: string, minimum?: number, maximum?: number }
    if (schema.type !== 'integer') continue
    const min = schema.minimum as number
    t.equal(refusal({ ...companions, [name]: min }), undefined, `${name} accepts its minimum ${min}`)
    t.match(refusal({ ...companions, [name]: min - 1 }), { code: 'FST_WSR_INVALID_OPTION', message: `option ${name}: Expected integer to be greater or equal to ${min}` }, `${name} refuses ${min - 1}`)
    t.match(refusal({ ...companions, [name]: min + 0.5 }), { message: `option ${name}: Expected integer (got ${min + 0.5})` }, `${name} refuses a fraction`)
    if (schema.maximum === undefined) continue
    t.equal(refusal({ ...companions, [name]: schema.maximum }), undefined, `${name} accepts its maximum ${schema.maximum}`)
    t.match(refusal({ ...companions, [name]: schema.maximum + 1 }), { message: `option ${name}: Expected integer to be less or equal to ${schema.maximum}` }, `${name} refuses ${schema.maximum + 1}`)
  }
})

t.test("Fastify's own register options pass; undefined values are ignored; extra keys are the caller's to refuse", async (t) => {
  t.equal(refusal({ logLevel: 'error', logSerializers: {} }), undefined)
  t.equal(refusal({ path: undefined, authenticate: undefined }), undefined)
  t.equal(OptionsSchema.additionalProperties, true, 'the schema lets unknown keys through: buildConfig refuses them by name first')
})
