import t from 'tap'
import { Type } from '@sinclair/typebox'
import { HandlerRegistry } from '../../lib/registry.js'
import { RouterStats } from '../../lib/stats.js'

t.test('routes: compiled once, defaults, duplicates, overrides and aliases', async (t) => {
  const registry = new HandlerRegistry(new RouterStats(), 30_000)
  const handler = (): undefined => undefined
  const route = registry.add('echo', { schema: Type.Object({ text: Type.String() }) }, handler)
  t.equal(route.replyType, 'echo_result')
  t.equal(route.timeoutMs, 30_000)
  t.equal(route.droppable, false)
  t.ok(route.payloadCheck?.Check({ text: 'x' }))
  t.notOk(route.payloadCheck?.Check({ text: 1 }))
  t.equal(route.replyCheck, null)
  t.throws(() => registry.add('echo', {}, handler), { code: 'FST_WSR_DUPLICATE_HANDLER' })
  const replaced = registry.add('echo', { override: true, replyType: 'said', timeoutMs: 5 }, handler)
  t.equal(registry.get('echo'), replaced)
  t.equal(replaced.replyType, 'said')
  registry.alias('old_echo', 'echo')
  t.equal(registry.get('old_echo'), replaced, 'an alias follows the current route')
  t.notOk(registry.has('nope'))
  t.equal(registry.get('nope'), undefined)
  t.throws(() => registry.add('', {}, handler), { code: 'FST_WSR_INVALID_HANDLER' })
  t.throws(() => registry.add('x'.repeat(65), {}, handler), { code: 'FST_WSR_INVALID_HANDLER' })
  t.throws(() => registry.add('bad', {}, 'not a function' as never), { code: 'FST_WSR_INVALID_HANDLER' })
})
