// lib/peer-dependency.ts on its own: an optional peer that is installed loads,
// a missing one is FST_WSR_MISSING_PEER naming what to install. The packed
// package is checked end to end in test/package.test.ts.
import t from 'tap'
import { requirePeer } from '../lib/peer-dependency.js'
import { FST_WSR_MISSING_PEER } from '../lib/errors.js'

t.test('an installed peer is returned as its module', async (t) => {
  const ioredis = requirePeer<{ Redis: unknown }>('ioredis', 'redis')
  t.type(ioredis.Redis, 'function')
})

t.test('a missing peer is FST_WSR_MISSING_PEER with the entry point and the install command', async (t) => {
  t.throws(() => requirePeer('fastify-ws-router-no-such-peer', 'somewhere'), {
    code: 'FST_WSR_MISSING_PEER',
    message: 'fastify-ws-router/somewhere needs the optional peer dependency "fastify-ws-router-no-such-peer", which is not installed: run npm install fastify-ws-router-no-such-peer'
  })
  t.ok(new FST_WSR_MISSING_PEER('a', 'b', 'b') instanceof Error)
})
