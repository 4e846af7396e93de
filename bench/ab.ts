/**
 * A/B of the router's per-frame CPU: two builds of the plugin (tsc output,
 * `dist/` directories) and a hand-written `switch` router, in one process,
 * in alternating rounds, so that a machine shared with other work slows
 * all three alike. Not part of `npm run bench`.
 *
 *   npm run build   # this tree into dist/
 *   taskset -c 1 npx tsx bench/ab.ts --a /tmp/base/dist --b dist [--rounds 9] [--frames 20000] [--bytes 64]
 *
 * One frame per turn of the event loop (a `setImmediate` each), on a stub
 * socket whose write callback comes on the next tick as Node's does: the
 * per-read shape of C=1000 W=1, where every read holds one frame and every
 * turn pays its own ticks and microtasks. The figure is process CPU time
 * (`process.cpuUsage()`, user + system, GC threads included) per frame, the
 * empty turn's cost subtracted; medians of the rounds with min–max.
 */
import { EventEmitter } from 'node:events'
import { resolve as resolvePath } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import Fastify, { type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import type { WebSocket } from 'ws'
import type { WsRouter as WsRouterClass } from '../lib/router.js'
import type { buildConfig as BuildConfig } from '../lib/options.js'
import type { registerPing as RegisterPing } from '../lib/handlers/ping.js'
import { payloadJson } from './harness/config.js'
import { spread } from './harness/stats.js'
import { userMessageReply, type UserMessage } from './servers/shared.js'

const { values: args } = parseArgs({
  options: {
    a: { type: 'string' },
    b: { type: 'string', default: 'dist' },
    rounds: { type: 'string', default: '9' },
    frames: { type: 'string', default: '20000' },
    bytes: { type: 'string', default: '64' }
  }
})
const ROUNDS = Number(args.rounds)
const FRAMES = Number(args.frames)
const BYTES = Number(args.bytes)

/** Just enough of a ws WebSocket: open, nothing buffered, the write callback on the next tick. */
class StubSocket extends EventEmitter {
  readyState = 1
  bufferedAmount = 0
  readonly OPEN = 1
  /** The last frame written: checked after the warm-up, so that every contender measures a real reply. */
  last = ''
  send (text: string, cb?: (err?: Error) => void): void {
    this.last = text
    if (cb !== undefined) process.nextTick(cb)
  }

  close (): void {}
  terminate (): void {}
  pause (): void {}
  resume (): void {}
  ping (): void {}
}

type OnMessage = ((data: Buffer, isBinary: boolean) => void) & { socket?: StubSocket }

const log = Fastify({ logger: { level: 'silent' } }).log
const request = { log } as unknown as FastifyRequest
const UserMessageSchema = Type.Object({ room: Type.String(), text: Type.String() })

/** What the bench drives of a build's engine (or of an earlier build's router). */
interface BenchEngine {
  readonly builtins?: unknown
  lock: () => void
  accept: (socket: WebSocket, request: FastifyRequest, identity: { userId: string }) => unknown
}

async function pluginFrom (dir: string): Promise<OnMessage> {
  const base = pathToFileURL(resolvePath(dir)).href
  const { WsRouter } = await import(`${base}/lib/router.js`) as { WsRouter: typeof WsRouterClass }
  const { buildConfig } = await import(`${base}/lib/options.js`) as { buildConfig: typeof BuildConfig }
  const { registerPing } = await import(`${base}/lib/handlers/ping.js`) as { registerPing: typeof RegisterPing }
  const router = new WsRouter(buildConfig({ environment: 'production', allowAnonymous: true, rateLimit: false }), log)
  // Since the facade (issue 9) the wiring's entry points are on the engine
  // behind `router[kEngine]`; an earlier build has them on the router itself.
  const { kEngine } = await import(`${base}/lib/symbols.js`) as { kEngine?: symbol }
  const engine = (kEngine === undefined ? router : (router as unknown as Record<symbol, unknown>)[kEngine]) as BenchEngine
  // The plugin registers `ping` (plugins/router.ts); a bare WsRouter has no built-ins.
  registerPing((engine.builtins ?? router) as Parameters<typeof RegisterPing>[0])
  router.on('user_message', { schema: UserMessageSchema, replyType: 'user_message_result', override: true }, (payload) => userMessageReply(payload))
  engine.lock()
  const socket = new StubSocket()
  engine.accept(socket as unknown as WebSocket, request, { userId: 'bench' })
  const listener = socket.listeners('message')[0] as (this: StubSocket, data: Buffer, isBinary: boolean) => void
  const onMessage: OnMessage = (data, isBinary) => listener.call(socket, data, isBinary)
  onMessage.socket = socket
  return onMessage
}

/** bench/servers/handwritten.ts's onMessage, on the stub socket. */
function handwritten (): OnMessage {
  const socket = new StubSocket()
  const onMessage: OnMessage = (data) => {
    const frame = JSON.parse(data.toString()) as { type?: unknown, id?: unknown, payload?: unknown }
    switch (frame.type) {
      case 'ping':
        socket.send(JSON.stringify({ type: 'pong', id: frame.id, payload: { serverTime: Date.now() }, timestamp: Date.now() }))
        return
      case 'user_message': {
        const message = frame.payload as Partial<UserMessage>
        if (typeof message?.room !== 'string' || typeof message.text !== 'string') throw new Error('invalid')
        socket.send(JSON.stringify({ type: 'user_message_result', id: frame.id, payload: userMessageReply(message as UserMessage), timestamp: Date.now() }))
      }
    }
  }
  onMessage.socket = socket
  return onMessage
}

/** CPU µs of `FRAMES` turns, each handling one frame. */
function cpuOfTurns (onMessage: OnMessage | null, frame: Buffer): Promise<number> {
  return new Promise((resolve) => {
    let left = FRAMES
    const start = process.cpuUsage()
    const turn = (): void => {
      onMessage?.(frame, false)
      if (--left > 0) {
        setImmediate(turn)
        return
      }
      setImmediate(() => {
        const used = process.cpuUsage(start)
        resolve(used.user + used.system)
      })
    }
    setImmediate(turn)
  })
}

const contenders: Array<[string, OnMessage | null]> = [['empty turn', null], ['hand-written', handwritten()]]
if (args.a !== undefined) contenders.push([`A ${args.a}`, await pluginFrom(args.a)])
contenders.push([`B ${args.b}`, await pluginFrom(args.b)])

for (const kind of ['ping', 'user_message']) {
  const frame = Buffer.from(`{"type":"${kind}","id":12345,"payload":${payloadJson(BYTES)}}`)
  const samples = new Map<string, number[]>(contenders.map(([name]) => [name, []]))
  const replyType = kind === 'ping' ? 'pong' : 'user_message_result'
  for (const [name, onMessage] of contenders) {
    await cpuOfTurns(onMessage, frame) // warm-up and JIT
    const last = onMessage?.socket?.last
    if (last !== undefined && !last.startsWith(`{"type":"${replyType}"`)) throw new Error(`${name} answered ${last.slice(0, 80)}, not ${replyType}`)
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, onMessage] of contenders) (samples.get(name) as number[]).push(await cpuOfTurns(onMessage, frame) * 1000 / FRAMES)
  }
  const empty = spread(samples.get('empty turn') as number[]).median
  const hand = spread(samples.get('hand-written') as number[]).median - empty
  console.log(`\n== ${kind}, frame of ${frame.length} bytes: CPU ns per frame, the empty turn (${empty.toFixed(0)} ns) subtracted; ${ROUNDS} rounds ==`)
  for (const [name] of contenders.slice(1)) {
    const s = spread((samples.get(name) as number[]).map((ns) => ns - empty))
    console.log(`${name.padEnd(40)} ${s.median.toFixed(0).padStart(6)} ns (${s.min.toFixed(0)}–${s.max.toFixed(0)})  ÷ hand-written ${(s.median / hand).toFixed(2)}`)
  }
}
