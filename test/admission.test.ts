import t from 'tap'
import net from 'node:net'
import { startServer } from './helpers/server.js'
import { connect, tryUpgrade } from './helpers/client.js'
import { delay, waitFor } from './helpers/wait.js'
import { engineOf } from './helpers/internals.js'

const TOKEN = 'secret-token-7f3a9c'

t.test('authenticate runs before the upgrade; refusals are HTTP answers', async (t) => {
  const server = await startServer({
    authenticate: (_request, token) => token === TOKEN ? { userId: 'alice', role: 'admin' } : null
  }, (app) => {
    app.wsRouter.on('me', (_payload, ctx) => ({ userId: ctx.userId }))
  })
  t.teardown(server.close)

  const none = await tryUpgrade(server.url)
  t.equal(none.status, 401, 'no credentials → 401')
  t.equal(none.body.code, 'AUTH_REQUIRED')
  const wrong = await tryUpgrade(server.url, { headers: { authorization: 'Bearer nope' } })
  t.equal(wrong.status, 401, 'a wrong token → 401')

  const byHeader = await connect(server.url, { headers: { authorization: `Bearer ${TOKEN}` } })
  const hello = await byHeader.next('connection_established')
  t.equal(hello.payload.userId, 'alice', 'Authorization: Bearer')
  byHeader.ws.terminate()

  const byQuery = await connect(`${server.url}?token=${TOKEN}`)
  t.equal((await byQuery.next('connection_established')).payload.userId, 'alice', '?token=')
  byQuery.ws.terminate()

  const byProtocol = await tryUpgrade(server.url, {}, ['bearer', TOKEN])
  t.equal(byProtocol.status, 101, 'Sec-WebSocket-Protocol: bearer, <token>')
  t.equal(byProtocol.protocol, 'bearer', 'the server answers "bearer", never the token')

  await waitFor(() => server.app.wsRouter.connectionCount === 0)
  const stats = server.app.wsRouter.getStats()
  t.equal(stats.refused.AUTH_REQUIRED, 2)
  for (const line of server.logs) {
    t.notOk(JSON.stringify(line).includes(TOKEN), `no log line holds the token: ${line.msg}`)
  }
  t.ok(server.logs.some((line) => typeof (line.req as { url?: string } | undefined)?.url === 'string' && (line.req as { url: string }).url.includes('token=[REDACTED]')), 'the URL is logged redacted')
})

t.test('authenticate that throws, fails on the server or hangs', async (t) => {
  const server = await startServer({
    authTimeoutMs: 200,
    authenticate: async (request) => {
      const mode = (request.query as { mode?: string }).mode
      if (mode === 'throws') throw new Error('jwt malformed')
      if (mode === 'forbidden') throw Object.assign(new Error('banned'), { statusCode: 403 })
      if (mode === 'server') throw Object.assign(new Error('db down'), { statusCode: 503 })
      if (mode === 'hangs') return await new Promise(() => {})
      if (mode === 'slow') { await delay(300); return { userId: 'slow' } }
      return { userId: 'ok' }
    }
  })
  t.teardown(server.close)
  t.equal((await tryUpgrade(`${server.url}?mode=throws`)).status, 401)
  t.equal((await tryUpgrade(`${server.url}?mode=forbidden`)).status, 403)
  t.equal((await tryUpgrade(`${server.url}?mode=server`)).status, 500)
  const hung = await tryUpgrade(`${server.url}?mode=hangs`)
  t.equal(hung.status, 500)
  t.equal(hung.body.code, 'AUTH_TIMEOUT')
  t.equal((await tryUpgrade(`${server.url}?mode=ok`)).status, 101)

  // A client that resets while authenticate is pending crashes nothing and holds no slot.
  const address = server.app.server.address() as net.AddressInfo
  const socket = net.connect(address.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write('GET /ws?mode=slow HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
  await delay(50)
  socket.resetAndDestroy()
  await delay(400)
  t.equal(engineOf(server.app.wsRouter).admissions.size, 0, 'no admission left behind')
  t.equal((await tryUpgrade(`${server.url}?mode=ok`)).status, 101, 'the server still serves')
})

t.test('allowedOrigins: foreign, null and look-alike origins get 403', async (t) => {
  const server = await startServer({ allowedOrigins: ['https://app.example.com', 'https://*.example.org'] })
  t.teardown(server.close)
  const status = async (origin?: string): Promise<number> => (await tryUpgrade(server.url, origin === undefined ? {} : { headers: { origin } })).status
  t.equal(await status('https://app.example.com'), 101)
  t.equal(await status('https://APP.example.com:443'), 101, 'normalised')
  t.equal(await status('https://chat.example.org'), 101, 'wildcard subdomain')
  t.equal(await status('https://evil.com'), 403)
  t.equal(await status('null'), 403)
  t.equal(await status('https://app.example.com.evil.com'), 403, 'look-alike host')
  t.equal(await status('http://app.example.com'), 403, 'other scheme')
  t.equal(await status('https://app.example.com:8443'), 403, 'other port')
  t.equal(await status('https://example.org'), 403, 'the wildcard needs a subdomain')
  t.equal(await status('https://evilexample.org'), 403)
  t.equal(await status(undefined), 101, 'no Origin (server, CLI, mobile) is let through')
  t.equal(server.app.wsRouter.getStats().refused.ORIGIN_FORBIDDEN, 7)
})

t.test('requireOrigin refuses clients without an Origin', async (t) => {
  const server = await startServer({ allowedOrigins: ['https://app.example.com'], requireOrigin: true })
  t.teardown(server.close)
  t.equal((await tryUpgrade(server.url)).status, 403)
  t.equal((await tryUpgrade(server.url, { headers: { origin: 'https://app.example.com' } })).status, 101)
})

t.test('an invalid allowedOrigins entry fails registration', async (t) => {
  await t.rejects(startServer({ allowedOrigins: ['app.example.com/path'] }), { code: 'FST_WSR_INVALID_OPTION' })
})

t.test('connection limits: 429 per user, 503 per server, before the upgrade', async (t) => {
  const server = await startServer({ maxConnections: 3, maxConnectionsPerUser: 2 })
  t.teardown(server.close)
  const a1 = await connect(`${server.url}?user=a`)
  const a2 = await connect(`${server.url}?user=a`)
  const third = await tryUpgrade(`${server.url}?user=a`)
  t.equal(third.status, 429)
  t.equal(third.body.code, 'USER_CONNECTION_LIMIT')
  const b1 = await connect(`${server.url}?user=b`)
  const full = await tryUpgrade(`${server.url}?user=c`)
  t.equal(full.status, 503)
  t.equal(full.body.code, 'SERVER_FULL')
  a1.ws.close()
  await a1.closed
  await waitFor(() => server.app.wsRouter.connectionCount === 2)
  t.equal((await tryUpgrade(`${server.url}?user=a`)).status, 101, 'a freed slot is usable again')
  a2.ws.terminate()
  b1.ws.terminate()
})

t.test('concurrent upgrades cannot overshoot the per-user limit', async (t) => {
  const server = await startServer({ maxConnectionsPerUser: 3, authenticate: async () => { await delay(30); return { userId: 'same' } } })
  t.teardown(server.close)
  // connect() keeps each connection open, so every slot stays taken.
  const outcomes = await Promise.allSettled(Array.from({ length: 10 }, async () => await connect(server.url)))
  const opened = outcomes.filter((o) => o.status === 'fulfilled')
  t.equal(opened.length, 3)
  t.equal(outcomes.filter((o) => o.status === 'rejected' && /HTTP 429/.test(String(o.reason))).length, 7)
  t.equal(server.app.wsRouter.connectionCount, 3)
  for (const o of opened) o.value.ws.terminate()
})

t.test('production refuses to start without authenticate unless allowAnonymous', async (t) => {
  await t.rejects(startServer({ environment: 'production' }), { code: 'FST_WSR_ANONYMOUS_IN_PRODUCTION' })
  const server = await startServer({ environment: 'production', allowAnonymous: true })
  t.teardown(server.close)
  t.ok(server.logs.some((line) => line.level === 40 && /allowedOrigins is not set/.test(line.msg)), 'warns without allowedOrigins')
  const client = await connect(`${server.url}?user=mallory`)
  const hello = await client.next('connection_established')
  t.match(hello.payload.userId, /^anon-/, 'no demo identity in production')
  client.ws.terminate()
})

t.test('plain HTTP requests to the path take no connection slot', async (t) => {
  const server = await startServer({ maxConnections: 2 })
  t.teardown(server.close)
  const http = server.url.replace('ws://', 'http://')
  for (let i = 0; i < 5; i++) {
    const response = await fetch(http)
    t.equal(response.status, 404)
    await response.arrayBuffer()
  }
  t.equal(engineOf(server.app.wsRouter).admissions.size, 0)
  const a = await connect(server.url)
  const b = await connect(server.url)
  t.equal(server.app.wsRouter.connectionCount, 2, 'both slots still free for WebSocket clients')
  a.ws.terminate()
  b.ws.terminate()
})
