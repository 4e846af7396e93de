import Fastify, { type FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { wsRouter, type WsRouterOptions } from '../../lib/index.js'

export interface LogLine {
  level: number
  msg: string
  [key: string]: unknown
}

export interface TestServer {
  app: FastifyInstance
  url: string
  logs: LogLine[]
  close: () => Promise<void>
}

/** A JSON log sink: every line the app logs, parsed. */
export function logSink (): { stream: Writable, lines: LogLine[] } {
  const lines: LogLine[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine)
      }
      callback()
    }
  })
  return { stream, lines }
}

/** A real server on a spare port, with the router registered and a log sink. */
export async function startServer (
  options: WsRouterOptions = {},
  setup?: (app: FastifyInstance) => void | Promise<void>
): Promise<TestServer> {
  const sink = logSink()
  const app = Fastify({ logger: { level: 'info', stream: sink.stream } })
  await app.register(wsRouter, { environment: 'test', ...options })
  if (setup !== undefined) await setup(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  const path = options.path ?? '/ws'
  return {
    app,
    url: `ws://127.0.0.1:${address.port}${path}`,
    logs: sink.lines,
    close: () => app.close()
  }
}
