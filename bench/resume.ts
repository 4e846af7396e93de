/**
 * Resumable delivery under forced disconnects (issue 12, "Measured").
 *
 *   npm run bench:resume [-- --quick] [-- --disconnects N] [-- --seconds S] [-- --window MS] [-- --memory-only]
 *
 * Starts its own redis-server and two router instances (RedisAdapter +
 * RedisResumeStore, child processes). 20 receivers sit in one room on
 * instance A; senders on instance B send 100 room messages per second in
 * all. Meanwhile 1 000 receiver sockets are cut (`terminate()`, no close
 * frame) at random moments; each receiver reconnects to the other instance
 * than the one it left and resumes with its token and last seq, mostly within
 * the window, some after it. Every frame is checked by its `seq` and by its
 * sender's own counter:
 * - delivered: room messages received;
 * - duplicated: a message (sender, n) or a seq received twice;
 * - out of order: a sender's n below one already received;
 * - missing: a message never received, and not inside a reported gap
 *   (`resumed.gap`) or a reported fresh session (`resume_failed`);
 * - gaps reported, and the messages they explain.
 * Also the resume latency (socket opened → `resumed`), p50/p99, and memory
 * per parked session of the memory store (in this process, after GC).
 * Writes nothing: the figures go to docs/delivery.md by hand, with the command.
 */
import { performance } from 'node:perf_hooks'
import WebSocket from 'ws'
import { MemoryResumeStore } from '../lib/index.js'
import { startRedis } from '../test/helpers/redis.js'
import { spawnInstance, type Instance } from '../test/helpers/instances.js'
import { delay } from '../test/helpers/wait.js'

const argv = process.argv.slice(2)
const quick = argv.includes('--quick')
function numberArg (name: string, fallback: number): number {
  const at = argv.indexOf(name)
  return at === -1 ? fallback : Number(argv[at + 1])
}
const RECEIVERS = 20
const SENDERS = 2
const RATE = 100 // room messages per second, all senders together
const DISCONNECTS = numberArg('--disconnects', quick ? 150 : 1000)
const SECONDS = numberArg('--seconds', quick ? 20 : 120)
const WINDOW_MS = numberArg('--window', 3000)
/** Share of reconnects that wait past the window. */
const LATE_SHARE = 0.05
const ROOM = 'bench'
const instanceFile = new URL('./resume/instance.ts', import.meta.url).pathname

interface Frame { type: string, id?: string, seq?: number, payload?: Record<string, unknown> }

const tally = {
  delivered: 0,
  duplicated: 0,
  outOfOrder: 0,
  missing: 0,
  /** seq holes not covered by a reported gap (the same loss seen through seq). */
  seqHoles: 0,
  /** messages never received whose send the sender was told failed (`said.ok` false): reported, not silent. */
  failedSendsMissing: 0,
  gapsReported: 0,
  seqsInGaps: 0,
  /** messages skipped across a reported gap or a fresh session: explained, not silent. */
  messagesInGaps: 0,
  resumed: 0,
  replayed: 0,
  failed: {} as Record<string, number>,
  disconnects: 0,
  lateReconnects: 0,
  senderFailures: 0
}
const resumeLatencies: number[] = []
/** `${sender}:${n}` of the sends whose answer said they failed somewhere. */
const failedSends = new Set<string>()
/** Of the messages of `sender` after `last` up to `upTo` (exclusive), how many were reported failed to their sender. */
function reportedFailed (sender: string, last: number, upTo: number): number {
  let count = 0
  for (let k = last + 1; k < upTo; k++) if (failedSends.has(`${sender}:${k}`)) count++
  return count
}
/** The first silent losses, with what the receiver was doing: for finding their cause. */
const lossSamples: Array<Record<string, unknown>> = []

class Receiver {
  readonly user: string
  ws: WebSocket | null = null
  instance = 0
  token: string | null = null
  lastSeq = 0
  /** sender → highest n received. */
  readonly lastN = new Map<string, number>()
  /** `${s}:${n}` received, for duplicates. */
  readonly seen = new Set<string>()
  /** A gap or a fresh session was reported: the next jump per sender is explained. */
  readonly jumpAllowed = new Set<string>()
  /** Frames of a resume in progress, checked once `resumed` says whether there was a gap. */
  pending: Frame[] | null = null
  live = false
  private openedAt = 0
  /** What happened to this receiver lately, for the loss samples. */
  readonly history: string[] = []

  constructor (index: number, private readonly urls: string[]) {
    this.user = `r${index}`
  }

  async open (resume: boolean): Promise<void> {
    const query = resume && this.token !== null ? `&resume=${encodeURIComponent(this.token)}&lastSeq=${this.lastSeq}` : ''
    const ws = new WebSocket(`${this.urls[this.instance] as string}?user=${this.user}${query}`)
    this.ws = ws
    this.live = false
    this.pending = resume && this.token !== null ? [] : null
    this.openedAt = performance.now()
    ws.on('message', (data) => this.onFrame(JSON.parse(String(data)) as Frame))
    ws.on('error', () => {})
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
  }

  cut (): void {
    this.history.push(`cut at seq ${this.lastSeq} on ${this.instance}`)
    this.live = false
    this.ws?.terminate()
    this.ws = null
  }

  private join (): void {
    this.ws?.send(JSON.stringify({ type: 'join', id: `j-${Math.random()}`, payload: { room: ROOM } }))
  }

  private onFrame (frame: Frame): void {
    switch (frame.type) {
      case 'connection_established': {
        const resume = frame.payload?.resume as { token?: string } | undefined
        this.token = resume?.token ?? null
        if (this.pending === null) this.join()
        return
      }
      case 'joined':
        this.live = true
        return
      case 'resumed': {
        resumeLatencies.push(performance.now() - this.openedAt)
        this.history.push(`resumed on ${this.instance} after ${Math.round(performance.now() - this.openedAt)} ms, replayed ${String(frame.payload?.replayed)}, lastSeq ${String(frame.payload?.lastSeq)}`)
        tally.resumed++
        tally.replayed += Number(frame.payload?.replayed ?? 0)
        const gap = frame.payload?.gap as { from: number, to: number } | undefined
        if (gap !== undefined) this.gap(gap.to - gap.from + 1)
        const pending = this.pending ?? []
        this.pending = null
        for (const held of pending) this.check(held, gap)
        this.live = true
        return
      }
      case 'resume_failed': {
        const reason = String(frame.payload?.reason)
        this.history.push(`resume_failed ${reason} on ${this.instance}`)
        tally.failed[reason] = (tally.failed[reason] ?? 0) + 1
        // A fresh session: what was sent meanwhile is lost, and said so.
        this.pending = null
        this.lastSeq = 0
        for (const sender of this.lastN.keys()) this.jumpAllowed.add(sender)
        this.join()
        return
      }
      case 'heard':
        if (this.pending !== null) this.pending.push(frame)
        else this.check(frame, undefined)
    }
  }

  private gap (seqs: number): void {
    tally.gapsReported++
    tally.seqsInGaps += seqs
    for (const sender of this.lastN.keys()) this.jumpAllowed.add(sender)
  }

  private check (frame: Frame, gap: { from: number, to: number } | undefined): void {
    tally.delivered++
    const seq = frame.seq
    if (typeof seq === 'number') {
      if (seq <= this.lastSeq) tally.duplicated++
      else {
        const explained = gap !== undefined && this.lastSeq + 1 >= gap.from && seq - 1 <= gap.to
        if (seq > this.lastSeq + 1 && !explained && this.lastSeq !== 0) tally.seqHoles += seq - this.lastSeq - 1
        this.lastSeq = seq
      }
    }
    const s = String(frame.payload?.s)
    const n = Number(frame.payload?.n)
    const key = `${s}:${n}`
    if (this.seen.has(key)) { tally.duplicated++; return }
    this.seen.add(key)
    const last = this.lastN.get(s)
    if (last !== undefined && n < last) { tally.outOfOrder++; return }
    if (last !== undefined && n > last + 1) {
      if (this.jumpAllowed.has(s)) tally.messagesInGaps += n - last - 1
      else {
        const reported = reportedFailed(s, last, n)
        tally.failedSendsMissing += reported
        tally.missing += n - last - 1 - reported
        if (n - last - 1 - reported > 0 && lossSamples.length < 10) lossSamples.push({ receiver: this.user, sender: s, after: last, got: n, seq, lastSeq: this.lastSeq, instance: this.instance, sinceOpenMs: Math.round(performance.now() - this.openedAt), history: this.history.slice(-4) })
      }
    }
    this.jumpAllowed.delete(s)
    this.lastN.set(s, n)
  }
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number
}

async function memoryPerParkedSession (): Promise<{ sessions: number, events: number, eventBytes: number, bytesPerSession: number }> {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run with --expose-gc (npm run bench:resume does)')
  const SESSIONS = 10_000
  const EVENTS = 20
  const text = (seq: number): string => `{"seq":${seq},"v":1,"type":"heard","payload":{"s":"sender-1","n":${seq}},"timestamp":1767225600000}`
  gc()
  const before = process.memoryUsage().heapUsed
  const store = new MemoryResumeStore({ maxSessions: SESSIONS })
  for (let i = 0; i < SESSIONS; i++) {
    const sessionId = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`
    await store.create({ sessionId, userId: `user-${i}`, secretHash: 'ab'.repeat(32), owner: 'bench' }, 0)
    const events = []
    for (let seq = 1; seq <= EVENTS; seq++) events.push({ seq, text: text(seq), mid: `bench:${seq}` })
    await store.append(sessionId, 'bench', events)
    await store.park(sessionId, 'bench', [ROOM], 120_000)
  }
  gc()
  const after = process.memoryUsage().heapUsed
  if (store.counts().parked !== SESSIONS) throw new Error('not every session stayed parked')
  await store.close()
  return { sessions: SESSIONS, events: EVENTS, eventBytes: Buffer.byteLength(text(10)), bytesPerSession: Math.round((after - before) / SESSIONS) }
}

async function main (): Promise<void> {
  const memory = await memoryPerParkedSession()
  if (argv.includes('--memory-only')) {
    process.stdout.write(JSON.stringify({ command: `npm run bench:resume -- ${argv.join(' ')}`, memoryStore: memory }, null, 2) + '\n')
    return
  }
  const redis = await startRedis()
  const instances: Instance[] = []
  try {
    for (const id of ['A', 'B']) instances.push(await spawnInstance({ REDIS_URL: redis.url, INSTANCE_ID: id, WINDOW_MS: String(WINDOW_MS) }, instanceFile))
    const urls = instances.map((i) => i.url)
    const receivers = Array.from({ length: RECEIVERS }, (_, i) => new Receiver(i, urls))
    for (const receiver of receivers) await receiver.open(false)
    const started = Date.now()
    while (!receivers.every((r) => r.live)) {
      if (Date.now() - started > 10_000) throw new Error('receivers did not join')
      await delay(20)
    }
    await delay(300) // subscriptions are asynchronous

    // Senders on B, at RATE in all; each numbers its own messages.
    const senders = await Promise.all(Array.from({ length: SENDERS }, async (_, i) => {
      const ws = new WebSocket(`${urls[1] as string}?user=sender${i}`)
      ws.on('message', (data) => {
        const frame = JSON.parse(String(data)) as Frame
        if (frame.type === 'said' && frame.payload?.ok !== true) {
          tally.senderFailures++
          failedSends.add(`s${i}:${String(frame.id).slice(1)}`)
        }
      })
      await new Promise((resolve) => ws.once('open', resolve))
      return { ws, name: `s${i}`, n: 0 }
    }))
    const tick = setInterval(() => {
      for (const sender of senders) {
        sender.n++
        sender.ws.send(JSON.stringify({ type: 'say', id: `m${sender.n}`, payload: { room: ROOM, s: sender.name, n: sender.n } }))
      }
    }, 1000 * SENDERS / RATE)

    // Disconnects at random moments, spread over the run; reconnect to the other instance.
    const runMs = SECONDS * 1000
    const moments = Array.from({ length: DISCONNECTS }, () => 1000 + Math.random() * (runMs - 3000 - WINDOW_MS)).sort((a, b) => a - b)
    const t0 = Date.now()
    const reconnects: Array<Promise<void>> = []
    for (const moment of moments) {
      const wait = t0 + moment - Date.now()
      if (wait > 0) await delay(wait)
      const candidates = receivers.filter((r) => r.live)
      const receiver = candidates[Math.floor(Math.random() * candidates.length)]
      if (receiver === undefined) continue
      receiver.cut()
      tally.disconnects++
      const late = Math.random() < LATE_SHARE
      if (late) tally.lateReconnects++
      const away = late ? WINDOW_MS + 200 + Math.random() * 800 : 20 + Math.random() * 600
      receiver.instance = 1 - receiver.instance
      reconnects.push(delay(away).then(async () => await receiver.open(true)))
    }
    await Promise.all(reconnects)
    const settleStart = Date.now()
    while (!receivers.every((r) => r.live) && Date.now() - settleStart < 15_000) await delay(50)
    await delay(Math.max(0, t0 + runMs - Date.now()))
    clearInterval(tick)
    await delay(2000) // drain
    // Messages sent after each receiver's last one from that sender, never received.
    for (const receiver of receivers) {
      for (const sender of senders) {
        const last = receiver.lastN.get(sender.name) ?? 0
        if (last < sender.n) {
          if (receiver.jumpAllowed.has(sender.name)) tally.messagesInGaps += sender.n - last
          else {
            const reported = reportedFailed(sender.name, last, sender.n + 1)
            tally.failedSendsMissing += reported
            tally.missing += sender.n - last - reported
            if (lossSamples.length < 20) lossSamples.push({ atEnd: true, receiver: receiver.user, sender: sender.name, last, sent: sender.n, live: receiver.live, history: receiver.history.slice(-4) })
          }
        }
      }
      receiver.cut()
    }
    for (const sender of senders) sender.ws.close()
    const sorted = [...resumeLatencies].sort((a, b) => a - b)
    const sent = senders.reduce((sum, s) => sum + s.n, 0)
    const report = {
      command: `npm run bench:resume${argv.length > 0 ? ' -- ' + argv.join(' ') : ''}`,
      setup: { receivers: RECEIVERS, senders: SENDERS, ratePerSecond: RATE, seconds: SECONDS, windowMs: WINDOW_MS, store: 'RedisResumeStore', adapter: 'RedisAdapter' },
      sent,
      ...tally,
      silentLoss: tally.missing + tally.duplicated + tally.outOfOrder + tally.seqHoles,
      resumeLatencyMs: { count: sorted.length, p50: Number(percentile(sorted, 0.5).toFixed(1)), p99: Number(percentile(sorted, 0.99).toFixed(1)), max: Number((sorted.at(-1) ?? NaN).toFixed(1)) },
      memoryStore: memory,
      lossSamples
    }
    process.stdout.write(JSON.stringify(report, null, 2) + '\n')
  } finally {
    await Promise.all(instances.map(async (i) => await i.stop()))
    await redis.close()
  }
}

await main()
