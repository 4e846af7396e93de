import type { Cluster, Redis } from 'ioredis'
import { createCommandClient, type RedisClient } from '../adapters/redis-clients.js'
import { FST_WSR_INVALID_OPTION, FST_WSR_STORE_UNAVAILABLE } from '../errors.js'
import { sameSecretHash, type ClaimRefusal, type ClaimResult, type PeekedSession, type ResumeEvent, type ResumeSession, type ResumeStore, type ResumeStoreCounts, type ResumeStoreLimits } from './store.js'

/**
 * Resumable delivery across instances: the session streams in Redis, so a
 * client may resume on another instance than the one it left.
 *
 * One session = two keys sharing the hash tag `{sess:<id>}` (one slot, so one
 * Lua script may touch both, also on a Redis Cluster):
 * - `<prefix>{sess:<id>}`, a hash: `u` user, `h` secret hash, `o` owner
 *   (the instance that numbers and appends its events), `st` live or parked,
 *   `r` rooms (JSON, while parked), `ls` last appended seq, `fs` first held
 *   seq, `b` bytes held, `tl` the live TTL, `x` when a parked session expires;
 * - `<prefix>{sess:<id>}:ev`, a stream with one entry per event, whose id is
 *   `<seq>-0`, so reading "after seq n" is one XRANGE.
 *
 * Every state change is one Lua script, so ownership moves atomically: once
 * another instance has claimed a session, the old owner's `append` and `park`
 * return false. The stream is trimmed in the append script to `maxEvents`
 * and `maxBytes` (oldest first), and the first held seq is kept, so a resume
 * below it is reported as a gap, never as a silent hole. An append whose seq
 * skips numbers (an earlier append failed while Redis was away) discards what
 * was held before the hole for the same reason.
 *
 * Liveness of owners: each store refreshes a key per owner it serves every
 * `heartbeatMs`. A parked session whose owner stopped (crash, shutdown) can no
 * longer receive the events sent to it, so claiming it answers `expired`
 * rather than replaying a stream with a silent hole at its end.
 *
 * Redis unreachable, or not answering within `commandTimeoutMs`: every
 * operation rejects with `FST_WSR_STORE_UNAVAILABLE` (wire code
 * `BROKER_UNAVAILABLE`), never waits longer.
 */

export interface RedisResumeStoreOptions {
  /** A `redis://` URL, or an ioredis client (`Redis` or `Cluster`; the store uses a duplicate of it). Give this or `cluster`. */
  redis?: string | Redis | Cluster
  /** Seed nodes of a Redis Cluster, as `host:port` strings. Give this or `redis`. */
  cluster?: readonly string[]
  /** Key prefix. Default `wsr:`. */
  prefix?: string
  /** Events held per session; older ones are trimmed (a later resume reports a gap). Default 1 000. */
  maxEvents?: number
  /** Bytes of event text (UTF-8) held per session; older events are trimmed, the newest is always kept. Default 1 MiB. */
  maxBytes?: number
  /** Sessions parked by this instance; past it the one parked longest ago is dropped (a later resume: `unknown`). Default 10 000. */
  maxSessions?: number
  /** The longest any operation waits for Redis before rejecting with `FST_WSR_STORE_UNAVAILABLE`. Default 1 000 ms. */
  commandTimeoutMs?: number
  /** How often this store tells Redis that its owners are alive; an owner silent for 3 intervals is taken as gone. Default 2 000 ms. */
  heartbeatMs?: number
}

interface ScriptClient {
  wsrResumeAppend: (hash: string, stream: string, ...args: Array<string | number>) => Promise<[number, number, number]>
  wsrResumeDrop: (hash: string, stream: string, owner: string) => Promise<number>
  wsrResumePark: (hash: string, stream: string, owner: string, rooms: string, ttlMs: number) => Promise<number>
  wsrResumeClaim: (hash: string, stream: string, secretHash: string, userId: string, newOwner: string, expectedOwner: string, ownerGone: string) => Promise<string[]>
  wsrResumePeek: (hash: string) => Promise<Array<string | null>>
}

// Milliseconds on Redis's own clock: every instance compares expiries against one clock.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

/**
 * KEYS: hash, stream. ARGV: owner, maxEvents, maxBytes, then seq, text, mid
 * for each event. Answers {owned (0/1), trimmed, held}.
 */
const APPEND = `
local h, s = KEYS[1], KEYS[2]
local v = redis.call('HMGET', h, 'o', 'st', 'ls', 'b', 'fs', 'tl', 'x')
if v[1] ~= ARGV[1] then return {0, 0, 0} end
${NOW}
if v[2] == 'p' and tonumber(v[7]) <= now then return {0, 0, 0} end
local maxEvents, maxBytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local last, bytes, first = tonumber(v[3]), tonumber(v[4]), tonumber(v[5])
local trimmed = 0
for i = 4, #ARGV, 3 do
  local seq = tonumber(ARGV[i])
  if seq <= last then return redis.error_reply('ERR wsr: seq ' .. seq .. ' is not above ' .. last) end
  if seq > last + 1 then
    -- an append was lost: what came before the hole cannot be replayed without it
    trimmed = trimmed + redis.call('XLEN', s)
    redis.call('DEL', s)
    bytes = 0
    first = seq
  end
  redis.call('XADD', s, seq .. '-0', 't', ARGV[i + 1], 'm', ARGV[i + 2])
  last = seq
  bytes = bytes + #ARGV[i + 1]
end
-- oldest first; the newest event stays, even alone over maxBytes
local held = redis.call('XLEN', s)
while held > 1 and (held > maxEvents or bytes > maxBytes) do
  -- as many as the count bound needs (one per append in the steady state), a few more when bytes are over
  local oldest = redis.call('XRANGE', s, '-', '+', 'COUNT', math.min(100, math.max(held - maxEvents, 8)))
  for _, entry in ipairs(oldest) do
    if held <= 1 or (held <= maxEvents and bytes <= maxBytes) then break end
    redis.call('XDEL', s, entry[1])
    held = held - 1
    trimmed = trimmed + 1
    bytes = bytes - #entry[2][2]
    first = tonumber(string.match(entry[1], '^%d+')) + 1
  end
end
redis.call('HSET', h, 'ls', last, 'b', bytes, 'fs', first)
if v[2] == 'l' then
  redis.call('PEXPIRE', h, v[6])
  redis.call('PEXPIRE', s, v[6])
else
  redis.call('PEXPIRE', s, math.max(1, tonumber(v[7]) - now))
end
return {1, trimmed, held}`

/** KEYS: hash, stream. ARGV: owner. 1 when dropped; a session another owner claimed is left alone. */
const DROP = `
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`

/** KEYS: hash, stream. ARGV: owner, rooms (JSON), ttlMs. The hash outlives the window by one more window, to tell `expired` from `unknown`. */
const PARK = `
local h, s = KEYS[1], KEYS[2]
if redis.call('HGET', h, 'o') ~= ARGV[1] then return 0 end
${NOW}
local ttl = tonumber(ARGV[3])
redis.call('HSET', h, 'st', 'p', 'r', ARGV[2], 'x', now + ttl)
redis.call('PEXPIRE', h, 2 * ttl)
redis.call('PEXPIRE', s, ttl)
return 1`

/**
 * KEYS: hash. Answers {user, secret hash, rooms, owner, state} of a live
 * session, or of a parked one whose window has not passed (on Redis's
 * clock, as the claim checks it); an empty list otherwise.
 */
const PEEK = `
local v = redis.call('HMGET', KEYS[1], 'u', 'h', 'st', 'x', 'r', 'o')
if v[1] == false or v[2] == false or v[6] == false then return {} end
if v[3] == 'l' then return {v[1], v[2], '[]', v[6], 'l'} end
if v[3] ~= 'p' then return {} end
${NOW}
if tonumber(v[4]) <= now then return {} end
return {v[1], v[2], v[5] or '[]', v[6], 'p'}`

/**
 * KEYS: hash, stream. ARGV: secretHash, userId, newOwner, expectedOwner
 * (the owner read just before; another one means someone claimed it
 * meanwhile), ownerGone ('1' when that owner's liveness key is gone).
 */
const CLAIM = `
local h, s = KEYS[1], KEYS[2]
local v = redis.call('HMGET', h, 'u', 'h', 'o', 'st', 'x', 'r', 'ls', 'fs', 'tl')
if v[1] == false or v[2] ~= ARGV[1] then return {'unknown'} end
if v[1] ~= ARGV[2] then return {'forbidden'} end
if v[4] == 'p' then
  ${NOW}
  if tonumber(v[5]) <= now then
    redis.call('DEL', h, s)
    return {'expired'}
  end
end
if v[4] ~= 'p' or v[3] ~= ARGV[4] then return {'busy'} end
if ARGV[5] == '1' then
  redis.call('DEL', h, s)
  return {'expired'}
end
redis.call('HSET', h, 'o', ARGV[3], 'st', 'l')
redis.call('HDEL', h, 'x', 'r')
redis.call('PEXPIRE', h, v[9])
redis.call('PEXPIRE', s, v[9])
return {'ok', v[6], v[7], v[8]}`

const DEFAULTS = { prefix: 'wsr:', maxEvents: 1000, maxBytes: 1024 * 1024, maxSessions: 10_000, commandTimeoutMs: 1000, heartbeatMs: 2000 }

/**
 * @example
 * import { RedisResumeStore } from 'fastify-ws-router/redis'
 * const store = new RedisResumeStore({ redis: process.env.REDIS_URL })
 * await app.register(wsRouter, { path: '/ws', adapter: new RedisAdapter({ redis: process.env.REDIS_URL }), resume: { store } })
 */
export class RedisResumeStore implements ResumeStore {
  private readonly client: RedisClient
  private readonly scripts: ScriptClient
  private readonly prefix: string
  private readonly limits: ResumeStoreLimits
  private readonly heartbeatMs: number
  /** Owners this store appends for: their liveness keys are refreshed. */
  private readonly owners = new Set<string>()
  /** Live sessions this store owns, with their TTL (0: read it from Redis) and when it was last refreshed. */
  private readonly live = new Map<string, { ttlMs: number, refreshedAt: number }>()
  /** Sessions parked here, in park order (the first parked longest ago), with owner and expiry: the `maxSessions` bound. */
  private readonly parked = new Map<string, { owner: string, expiresAt: number }>()
  /** Events held per session this store appended to (Redis is not asked: counts() is synchronous). */
  private readonly held = new Map<string, number>()
  private heldTotal = 0
  private evicted = 0
  private trimmed = 0
  private readonly heartbeatTimer: NodeJS.Timeout
  private failures = 0
  private closed = false
  /** Until the first connection is up, operations wait for it (bounded); after, an outage fails them at once. */
  private everReady = false
  private readonly commandTimeoutMs: number

  constructor (options: RedisResumeStoreOptions) {
    this.prefix = options.prefix ?? DEFAULTS.prefix
    this.limits = {
      maxEvents: positiveInteger(options.maxEvents, DEFAULTS.maxEvents, 'maxEvents'),
      maxBytes: positiveInteger(options.maxBytes, DEFAULTS.maxBytes, 'maxBytes'),
      maxSessions: positiveInteger(options.maxSessions, DEFAULTS.maxSessions, 'maxSessions')
    }
    this.heartbeatMs = positiveInteger(options.heartbeatMs, DEFAULTS.heartbeatMs, 'heartbeatMs')
    const commandTimeoutMs = positiveInteger(options.commandTimeoutMs, DEFAULTS.commandTimeoutMs, 'commandTimeoutMs')
    this.commandTimeoutMs = commandTimeoutMs
    this.client = createCommandClient(options, commandTimeoutMs, 'RedisResumeStore').client
    this.client.once('ready', () => { this.everReady = true })
    // Every error event is handled: ioredis would otherwise print each retry. Operations report their own failures.
    this.client.on('error', () => { this.failures++ })
    this.client.defineCommand('wsrResumeAppend', { numberOfKeys: 2, lua: APPEND })
    this.client.defineCommand('wsrResumePark', { numberOfKeys: 2, lua: PARK })
    this.client.defineCommand('wsrResumeClaim', { numberOfKeys: 2, lua: CLAIM })
    this.client.defineCommand('wsrResumeDrop', { numberOfKeys: 2, lua: DROP })
    this.client.defineCommand('wsrResumePeek', { numberOfKeys: 1, lua: PEEK })
    this.scripts = this.client as unknown as ScriptClient
    this.heartbeatTimer = setInterval(() => { this.heartbeat() }, this.heartbeatMs)
    this.heartbeatTimer.unref()
  }

  // The session's two keys share the hash tag {sess:<id>}: one slot, so one script may use both.
  private hashKey (sessionId: string): string { return `${this.prefix}{sess:${sessionId}}` }
  private streamKey (sessionId: string): string { return `${this.prefix}{sess:${sessionId}}:ev` }
  private ownerKey (owner: string): string { return `${this.prefix}{owner:${owner}}` }
  private get ownerTtlMs (): number { return 3 * this.heartbeatMs }

  /**
   * Resolves once the connection to Redis is up, or rejects with
   * `FST_WSR_STORE_UNAVAILABLE` after `timeoutMs` (default 3 000 ms).
   * Operations never wait for it: while Redis is away they fail at once.
   */
  async ready (timeoutMs = 3000): Promise<void> {
    if (this.client.status === 'ready') return
    const up = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { this.client.off('ready', onReady); resolve(false) }, timeoutMs)
      const onReady = (): void => { clearTimeout(timer); resolve(true) }
      this.client.once('ready', onReady)
    })
    if (!up) throw new FST_WSR_STORE_UNAVAILABLE(`not connected within ${timeoutMs} ms`)
  }

  async create (session: ResumeSession, ttlMs: number): Promise<void> {
    const hash = this.hashKey(session.sessionId)
    await this.run(async () => {
      // Not awaited: the session's own commands must follow in the order they were asked (a park right after a create).
      this.serve(session.owner)
      await this.client.multi()
        .del(hash, this.streamKey(session.sessionId))
        .hset(hash, { u: session.userId, h: session.secretHash, o: session.owner, st: 'l', ls: 0, fs: 1, b: 0, tl: ttlMs })
        .pexpire(hash, ttlMs)
        .exec()
    })
    this.forget(session.sessionId)
    this.live.set(session.sessionId, { ttlMs, refreshedAt: Date.now() })
    this.held.set(session.sessionId, 0)
  }

  async append (sessionId: string, owner: string, events: readonly ResumeEvent[]): Promise<boolean> {
    const args: Array<string | number> = [owner, this.limits.maxEvents, this.limits.maxBytes]
    for (const event of events) args.push(event.seq, event.text, event.mid ?? '')
    const [owned, trimmed, held] = await this.run(async () => await this.scripts.wsrResumeAppend(this.hashKey(sessionId), this.streamKey(sessionId), ...args))
    if (owned !== 1) {
      // Claimed elsewhere, expired or dropped: nothing of it is ours any more.
      this.forget(sessionId)
      return false
    }
    this.trimmed += trimmed
    this.setHeld(sessionId, held)
    const live = this.live.get(sessionId)
    if (live !== undefined) live.refreshedAt = Date.now()
    return true
  }

  async park (sessionId: string, owner: string, rooms: readonly string[], ttlMs: number): Promise<boolean> {
    const parked = await this.run(async () => await this.scripts.wsrResumePark(this.hashKey(sessionId), this.streamKey(sessionId), owner, JSON.stringify(rooms), ttlMs)) === 1
    this.live.delete(sessionId)
    this.parked.delete(sessionId)
    if (!parked) {
      this.forget(sessionId)
      return false
    }
    this.parked.set(sessionId, { owner, expiresAt: Date.now() + ttlMs })
    await this.bound()
    return true
  }

  /** Release parked sessions whose window passed, then keep at most `maxSessions`, dropping the one parked longest ago. */
  private async bound (): Promise<void> {
    const now = Date.now()
    for (const [sessionId, { expiresAt }] of this.parked) if (expiresAt <= now) this.forget(sessionId)
    while (this.parked.size > this.limits.maxSessions) {
      const [sessionId, { owner }] = this.parked.entries().next().value as [string, { owner: string }]
      this.forget(sessionId)
      this.evicted++
      // A failed drop is left to the keys' own expiry (the window): the session is already forgotten here.
      await this.scripts.wsrResumeDrop(this.hashKey(sessionId), this.streamKey(sessionId), owner).catch(() => 0)
    }
  }

  async claim (sessionId: string, secretHash: string, userId: string, newOwner: string): Promise<ClaimResult> {
    const hash = this.hashKey(sessionId)
    const answer = await this.run(async () => {
      const owner = await this.client.hget(hash, 'o')
      if (owner === null) return ['unknown']
      // The owner's liveness key lives on another slot: read first; the script then checks that the owner did not change meanwhile.
      const ownerGone = owner !== newOwner && await this.client.exists(this.ownerKey(owner)) === 0
      this.serve(newOwner)
      return await this.scripts.wsrResumeClaim(hash, this.streamKey(sessionId), secretHash, userId, newOwner, owner, ownerGone ? '1' : '0')
    })
    if (answer[0] !== 'ok') return { ok: false, reason: answer[0] as ClaimRefusal }
    this.parked.delete(sessionId)
    this.live.set(sessionId, { ttlMs: 0, refreshedAt: 0 })
    return { ok: true, rooms: parseRooms(answer[1]), lastSeq: Number(answer[2]), firstSeq: Number(answer[3]) }
  }

  /**
   * A session this user may claim or take over with this secret (live or
   * parked, its rooms and owner), without taking it; null otherwise, and
   * once a parked session's window passed (the claim then answers `expired`).
   */
  async peek (sessionId: string, secretHash: string, userId: string): Promise<PeekedSession | null> {
    return await this.run(async () => {
      const [user, hash, rooms, owner, state] = await this.scripts.wsrResumePeek(this.hashKey(sessionId))
      if (user !== userId || typeof hash !== 'string' || typeof owner !== 'string' || !sameSecretHash(hash, secretHash)) return null
      // The owner's liveness key lives on another slot: a second command.
      const ownerAlive = await this.client.exists(this.ownerKey(owner)) === 1
      return { live: state === 'l', rooms: parseRooms(rooms ?? undefined), owner, ownerAlive }
    })
  }

  async read (sessionId: string, afterSeq: number, limit: number): Promise<readonly ResumeEvent[]> {
    const entries = await this.run(async () => await this.client.xrange(this.streamKey(sessionId), `${afterSeq + 1}-0`, '+', 'COUNT', limit))
    return entries.map(([id, fields]) => {
      const mid = fields[3]
      const event = { seq: Number(id.slice(0, id.indexOf('-'))), text: fields[1] as string }
      return mid === undefined || mid === '' ? event : { ...event, mid }
    })
  }

  async drop (sessionId: string, owner: string): Promise<void> {
    const dropped = await this.run(async () => await this.scripts.wsrResumeDrop(this.hashKey(sessionId), this.streamKey(sessionId), owner)) === 1
    // A session another instance claimed is no longer ours either way.
    if (dropped || this.parked.get(sessionId)?.owner === owner || this.live.has(sessionId)) this.forget(sessionId)
  }

  /** What this instance's store holds, counted locally (sessions parked or appended to elsewhere are not seen). */
  counts (): ResumeStoreCounts {
    return { sessions: this.live.size + this.parked.size, parked: this.parked.size, events: this.heldTotal, evicted: this.evicted, trimmed: this.trimmed }
  }

  /** Broker state for stats: whether Redis is reachable, and the client's errors so far. */
  status (): { kind: 'redis', connected: boolean, failures: number } {
    return { kind: 'redis', connected: this.client.status === 'ready', failures: this.failures }
  }

  /**
   * Stops the heartbeat and removes the owners' liveness keys: sessions
   * parked here can no longer receive events, so a claim elsewhere answers
   * `expired` at once instead of replaying a stream that stops short.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.heartbeatTimer)
    if (this.client.status === 'ready' && this.owners.size > 0) {
      // One command per key: on a Cluster they live on different slots.
      await Promise.all([...this.owners].map(async (owner) => await this.client.del(this.ownerKey(owner)).catch(() => 0)))
    }
    this.client.disconnect()
  }

  /**
   * Start refreshing an owner's liveness key (the first time this store acts
   * for it). Sent without waiting, so that the caller's next command goes out
   * right behind it; a failed write is tried again by the next caller.
   */
  private serve (owner: string): void {
    if (this.owners.has(owner)) return
    this.owners.add(owner)
    this.client.set(this.ownerKey(owner), '1', 'PX', this.ownerTtlMs).catch(() => { this.owners.delete(owner) })
  }

  private forget (sessionId: string): void {
    this.live.delete(sessionId)
    this.parked.delete(sessionId)
    this.setHeld(sessionId, 0)
    this.held.delete(sessionId)
  }

  private setHeld (sessionId: string, held: number): void {
    this.heldTotal += held - (this.held.get(sessionId) ?? 0)
    this.held.set(sessionId, held)
  }

  /**
   * Owners' liveness, and the TTL of live sessions not appended to for half
   * their TTL (an idle connection's session must outlive its idleness). One
   * command per key: on a Cluster the keys live on different slots.
   */
  private heartbeat (): void {
    if (this.client.status !== 'ready') return
    for (const owner of this.owners) this.client.set(this.ownerKey(owner), '1', 'PX', this.ownerTtlMs).catch(() => {})
    const now = Date.now()
    for (const [sessionId, live] of this.live) {
      if (live.ttlMs > 0 && now - live.refreshedAt < live.ttlMs / 2) continue
      live.refreshedAt = now
      this.client.hget(this.hashKey(sessionId), 'tl').then(async (ttl) => {
        if (ttl === null) { this.forget(sessionId); return }
        live.ttlMs = Number(ttl)
        await Promise.all([this.client.pexpire(this.hashKey(sessionId), ttl), this.client.pexpire(this.streamKey(sessionId), ttl)])
      }).catch(() => {})
    }
  }

  /** One Redis operation: a failure to reach Redis becomes `FST_WSR_STORE_UNAVAILABLE`; a script's own refusal stays itself. */
  private async run<T> (operation: () => Promise<T>): Promise<T> {
    if (this.closed) throw new FST_WSR_STORE_UNAVAILABLE('the store is closed')
    // The app may take its first connections while the store is still connecting: wait for it, within the command timeout.
    if (!this.everReady && this.client.status !== 'ready') await this.ready(this.commandTimeoutMs)
    try {
      return await operation()
    } catch (err) {
      if (String((err as Error).message).includes('wsr:')) throw err
      throw new FST_WSR_STORE_UNAVAILABLE(String((err as Error).message), { cause: err })
    }
  }
}

function parseRooms (json: string | undefined): string[] {
  try {
    const rooms: unknown = JSON.parse(json ?? '[]')
    return Array.isArray(rooms) ? rooms.filter((room): room is string => typeof room === 'string') : []
  } catch {
    return []
  }
}

function positiveInteger (value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < 1) throw new FST_WSR_INVALID_OPTION(`RedisResumeStore.${name}`, `expected a positive integer, got ${String(value)}`)
  return value
}
