/**
 * Example server: `npm start`. WebSocket at ws://HOST:PORT/ws.
 * Outside production, `?user=alice` names the client (demo identity).
 */
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { wsRouter, WsRouterError } from '../lib/index.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } })

await app.register(wsRouter, { path: '/ws' })

app.wsRouter.on('echo', {
  schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 1000 }) }),
  replySchema: Type.Object({ text: Type.String() })
}, (payload) => ({ text: payload.text }))

app.wsRouter.on('whoami', (_payload, ctx) => ({ userId: ctx.userId, connectionId: ctx.connectionId, status: ctx.status() }))

app.wsRouter.on('fail', () => {
  throw new WsRouterError('DEMO_FAILURE', 'This type always fails, to show an error frame')
})

app.get('/stats', async () => app.wsRouter.getStats())

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    app.log.info({ signal }, 'shutting down')
    app.close().then(() => process.exit(0), (err: unknown) => {
      app.log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  })
}

await app.listen({ port, host })
