/**
 * Resumable delivery with the memory store (issue 12), on one instance:
 *
 * 1. memory per parked session: `SESSIONS` clients each receive `EVENTS`
 *    events of about `BYTES` bytes, then drop (no close frame) and are
 *    parked; the heap after a full GC is compared with the same run with
 *    `resume` off (where the closed connections release everything);
 * 2. replay latency: `RESUMES` clients, one after another, each resume a
 *    session that missed `MISSED` events; the time from opening the socket
 *    to receiving `resumed`, p50 and p99 (default `replayRatePerSecond`).
 *
 *   node --expose-gc --import tsx bench/resume-memory.ts
 *   node --expose-gc --import tsx bench/resume-memory.ts --sessions 2000 --events 50
 */
import { parseArgs } from 'node:util'
import Fastify, { type FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { wsRouter } from '../lib/index.js'

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '1000' },
    events: { type: 'string', default: '20' },
    bytes: { type: 'string', default: '200' },
    resumes: { type: 'string', default: '200' },
    missed: { type: 'string', default: '100' }
  }
})
const SESSIONS = Number(args.sessions)
const EVENTS = Number(args.events)
const BYTES = Number(args.bytes)
const RESUMES = Number(args.resumes)
const MISSED = Number(args.missed)

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')

async function server (resume: boolean): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify({ logger: false })
  await app.register(wsRouter, { environment: 'test', resume, maxConnectionsPerUser: 0, maxConnections: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, url: `ws://127.0.0.1:${address.port}/ws` }
}

interface Opened { ws: WebSocket, id: string, token: string, frames: number }

function open (url: string): Promise<Opened> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    const opened: Opened = { ws, id: '', token: '', frames: 0 }
    ws.on('message', (data) => {
      opened.frames++
      const frame = JSON.parse(data.toString())
      if (frame.type === 'connection_established') {
        opened.id = frame.payload.connectionId
        opened.token = frame.payload.resume?.token ?? ''
        resolve(opened)
      }
    })
    ws.once('error', reject)
  })
}

async function settle (condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10))
}

function heap (): number {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}

/** Heap held after SESSIONS clients received EVENTS events each and dropped. */
async function heldAfterDrops (resume: boolean): Promise<number> {
  const { app, url } = await server(resume)
  const router = app.wsRouter
  const text = 'x'.repeat(BYTES)
  const clients: Opened[] = []
  for (let i = 0; i < SESSIONS; i++) clients.push(await open(`${url}?user=u${i}`))
  for (let n = 0; n < EVENTS; n++) {
    for (const client of clients) router.sendTo(client.id, 'msg', { n, text })
  }
  await settle(() => clients.every((client) => client.frames === EVENTS + 1))
  for (const client of clients) client.ws.terminate()
  await settle(() => router.connectionCount === 0)
  if (resume) await settle(() => router.getStats().resume?.parked === SESSIONS)
  clients.length = 0
  await new Promise((resolve) => setTimeout(resolve, 200))
  const held = heap()
  await app.close()
  return held
}

function percentile (sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

async function replayLatency (): Promise<{ p50: number, p99: number, max: number }> {
  const { app, url } = await server(true)
  const router = app.wsRouter
  const text = 'x'.repeat(BYTES)
  const times: number[] = []
  for (let i = 0; i < RESUMES; i++) {
    const client = await open(`${url}?user=r${i}`)
    client.ws.terminate()
    await settle(() => router.getStats().resume?.parked === 1)
    for (let n = 0; n < MISSED; n++) router.sendTo(client.id, 'msg', { n, text })
    const started = performance.now()
    await new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(`${url}?user=r${i}&resume=${client.token}&lastSeq=0`)
      ws.on('message', (data) => {
        const frame = JSON.parse(data.toString())
        if (frame.type === 'resumed') {
          if (frame.payload.replayed !== MISSED) reject(new Error(`replayed ${frame.payload.replayed}`))
          times.push(performance.now() - started)
          ws.close(1000)
          resolve()
        }
        if (frame.type === 'resume_failed') reject(new Error(frame.payload.reason))
      })
      ws.once('error', reject)
    })
    await settle(() => router.connectionCount === 0)
  }
  await app.close()
  times.sort((a, b) => a - b)
  return { p50: percentile(times, 50), p99: percentile(times, 99), max: times[times.length - 1] as number }
}

const without = await heldAfterDrops(false)
const withResume = await heldAfterDrops(true)
const perSession = (withResume - without) / SESSIONS
console.log(`memory store: ${SESSIONS} parked sessions, ${EVENTS} events of ~${BYTES} B payload each`)
console.log(`  heap held: ${(withResume / 1048576).toFixed(1)} MiB with resume, ${(without / 1048576).toFixed(1)} MiB without`)
console.log(`  per parked session: ${(perSession / 1024).toFixed(1)} KiB (${(perSession / EVENTS).toFixed(0)} B per held event)`)
const latency = await replayLatency()
console.log(`replay latency, ${RESUMES} resumes of ${MISSED} missed events each (open → resumed):`)
console.log(`  p50 ${latency.p50.toFixed(1)} ms, p99 ${latency.p99.toFixed(1)} ms, max ${latency.max.toFixed(1)} ms`)
