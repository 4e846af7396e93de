// Type tests (tstyche) for issue 10 §3–§4: wsRouter is typed as what it is,
// read-only; authenticate may return expiresAt; lastSeenMs may be null.
import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import type { Authenticate, ConnectionStatus, WsRouter } from '../../lib/index.js'
import '../../lib/index.js'

const app = Fastify()

test('wsRouter: typed present (a read throws FST_WSR_NO_ROUTER where none is registered), never reassigned', () => {
  expect(app.wsRouter).type.toBe<WsRouter>()
  const other = Fastify()
  // @ts-expect-error Cannot assign to 'wsRouter' because it is a read-only property
  app.wsRouter = other.wsRouter
})

test('authenticate may return expiresAt, a number of ms since the epoch', () => {
  expect<Authenticate>().type.toBeAssignableFrom(() => ({ userId: 'alice', expiresAt: Date.now() + 60_000 }))
  expect<Authenticate>().type.not.toBeAssignableFrom(() => ({ userId: 'alice', expiresAt: 'tomorrow' }))
})

test('checkConnection(): lastSeenMs is null when there is no socket', () => {
  expect<ConnectionStatus['lastSeenMs']>().type.toBe<number | null>()
  app.get('/status', async (request) => {
    expect(request.checkConnection()).type.toBe<ConnectionStatus>()
  })
})
