/**
 * Example server: `npm start`. WebSocket at ws://HOST:PORT/ws.
 * Clients authenticate with a JWT (`npm run token -- alice` prints one):
 * `Authorization: Bearer <token>`, `?token=<token>`, or the subprotocols
 * `bearer, <token>`. In development and test, `?user=alice` works without one.
 *
 * `PORT` (default 3000) and `HOST` (default 127.0.0.1; `0.0.0.0` in a
 * container) set the address; see examples/app.ts for the rest.
 * SIGTERM and SIGINT close every client with 1001 within `shutdownGraceMs`,
 * then exit.
 */
import type { FastifyInstance } from 'fastify'
import { buildApp, exampleEnvironment } from './app.js'

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'

let app: FastifyInstance
try {
  app = await buildApp(process.env)
} catch (err) {
  // A configuration problem (AUTH_SECRET missing in production, say): one clear line.
  console.error(`example server did not start: ${(err as Error).message}`)
  process.exit(1)
}

function shutdown (signal: NodeJS.Signals): void {
  app.log.info({ signal }, 'shutting down')
  // Both routers (in their own contexts: the root has no wsRouter) close their
  // clients with 1001 within shutdownGraceMs; past that and a margin, exit
  // anyway rather than wait for the platform's SIGKILL.
  const deadline = setTimeout(() => {
    app.log.error({ signal }, 'shutdown did not finish in time')
    process.exit(1)
  }, exampleEnvironment(process.env).shutdownGraceMs + 1000)
  deadline.unref()
  app.close().then(() => process.exit(0), (err: unknown) => {
    app.log.error({ err }, 'shutdown failed')
    process.exit(1)
  })
}

// A second signal of the same kind falls back to Node's default: exit at once.
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)

await app.listen({ port, host })
