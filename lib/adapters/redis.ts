import { randomBytes, randomUUID } from 'node:crypto'
import type { ChainableCommander, Cluster, Redis } from 'ioredis'
import { createRedisClients, type RedisClient } from './redis-clients.js'
import type { AdapterHost, FailedTarget, FanoutTarget, FenceRequest, PublishMeta, RemoteOutcome, RoomMember } from '../adapter.js'
import { MemoryAdapter } from './memory.js'
import { FST_WSR_BROKER_UNAVAILABLE, RemoteFailure } from '../errors.js'

/**
 * Scale-out on Redis pub/sub. Channels follow local membership: an instance
 * subscribes to a room's channel while it has a member of that room, and to
 * a user's channel while it has a connection of that user. A frame for a room
 * with members on k instances therefore costs one PUBLISH and k deliveries,
 * and an instance without members receives nothing for it. Broadcasts to
 * everyone use one channel all instances subscribe to.
 *
 * On a Redis Cluster, room and user channels are sharded (SSUBSCRIBE/
 * SPUBLISH): a room's frames go only to the shard that owns its slot. The
 * room's member set shares the room channel's hash tag, so it moves with it;
 * presence keys share one hash tag, so an instance's heartbeat is one
 * pipeline to one shard.
 *
 * Delivery across instances is at most once. What is lost is reported: a
 * publish while Redis is unreachable fails at once with `BROKER_UNAVAILABLE`
 * (no offline queue replays stale frames later), and with receipts on, other
 * instances report their per-connection outcomes or count as timed out.
 */

const BROKER_UNAVAILABLE = RemoteFailure.BROKER_UNAVAILABLE
const SUBSCRIPTION_MISSING = RemoteFailure.SUBSCRIPTION_MISSING
/** Rooms whose reach (remote instances with members) is remembered; past this the memory starts afresh. */
const MAX_REACH_ROOMS = 10_000

export interface RedisAdapterOptions {
  /**
   * A `redis://` URL, or an ioredis client for commands (duplicated for
   * subscriptions): a `Redis`, or a `Cluster`. Give this or `cluster`.
   */
  redis?: string | Redis | Cluster
  /**
   * Seed nodes of a Redis Cluster, as `host:port` strings (a few are enough:
   * the others are discovered). Give this or `redis`.
   *
   * @example new RedisAdapter({ cluster: ['10.0.0.1:6379', '10.0.0.2:6379'] })
   */
  cluster?: readonly string[]
  /** Key and channel prefix. Default `wsr:`. */
  prefix?: string
  /** Use sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7+). Always on with a Cluster; default false otherwise. */
  sharded?: boolean
  /** Make `app.ready()` reject when Redis cannot be reached at start. Default false. */
  requireBroker?: boolean
  /** Time to reach Redis at start when `requireBroker` is set. Default 3 000 ms. */
  connectTimeoutMs?: number
  /** Ask other instances for their per-connection outcomes. Default false. */
  receipts?: boolean
  /** How long to wait for receipts. Default 1 000 ms. */
  receiptTimeoutMs?: number
  /** An instance's presence expires this long after its last heartbeat. Default 30 000 ms. */
  presenceTtlMs?: number
  /** This instance's id. Default: random. */
  instanceId?: string
}

interface Header {
  /** origin instance */
  o: string
  /** connection left out */
  e?: string
  /** droppable */
  d?: 1
  /** receipt id, when the origin wants one */
  r?: string
  /** frame type */
  t: string
  /** the fan-out's message id (issue 12: resumed sessions skip an event they replayed) */
  m?: string
}

/**
 * Issue 12 (fence): a fence marker, published by an instance resuming a
 * session on each channel that names the session, behind every frame
 * published there so far. Only the addressed owner acts on it, once all
 * `n` markers of fence `f` have reached it. It carries no frame.
 */
interface FenceMarker {
  /** the instance that asks (it gets the answer on its receipt channel) */
  o: string
  /** the fence id */
  f: string
  /** the owner asked */
  w: string
  /** the session */
  s: string
  /** how many channels carry a marker of this fence */
  n: number
  /** 1: take the session over (the owner closes its live socket first) */
  k?: 1
}

/** A fence's answer, on the asking instance's receipt channel: the owner's last seq of the session. */
interface FenceAnswer {
  f: string
  seq: number
}

/** An event for a session another instance took over, on that instance's receipt channel. */
interface Forwarded {
  /** the session */
  fw: string
  /** the encoded frame */
  x: string
}

/** Fences whose markers are still arriving here are forgotten after this long (the asker gave up by then). */
const FENCE_FORGET_MS = 30_000
/** At most this many fences half-received at once; past it the oldest is forgotten. */
const MAX_OPEN_FENCES = 1024

interface Receipt {
  r: string
  i: string
  delivered: number
  failed: FailedTarget[]
}

interface PendingReceipt {
  expected: number
  received: number
  delivered: number
  failed: FailedTarget[]
  timer: NodeJS.Timeout
  resolve: (outcome: RemoteOutcome) => void
}

export class RedisAdapter extends MemoryAdapter {
  readonly instanceId: string
  private readonly pub: RedisClient
  private readonly sub: RedisClient
  private readonly ownsPublisher: boolean
  private readonly prefix: string
  private readonly sharded: boolean
  /** A Redis Cluster: ioredis keeps the sharded subscriptions across slot moves itself. */
  private readonly cluster: boolean
  private readonly options: RedisAdapterOptions
  private readonly receiptTimeoutMs: number
  private readonly presenceTtlMs: number
  /** channel → the target it stands for, for every channel this instance wants. */
  private readonly channels = new Map<string, FanoutTarget>()
  private readonly pendingReceipts = new Map<string, PendingReceipt>()
  private host: AdapterHost | null = null
  private heartbeatTimer: NodeJS.Timeout | null = null
  private down = true
  private downSince = Date.now()
  private everConnected = false
  private outages = 0
  private lastOutageMs = 0
  /** Sum of the ended outages' durations (the current one is added in status()). */
  private outageMsTotal = 0
  private publishFailures = 0
  /** Room publishes that reached fewer instances than hold members (SUBSCRIPTION_MISSING). */
  private missedPublishes = 0
  /** room → remote instances holding members, from its member set when last read. */
  private readonly reach = new Map<string, number>()
  private writeFailures = 0
  private subscribeFailures = 0
  /** Failures while the connections are up (a shard failing over, say): logged once per streak. */
  private failingSince: number | null = null
  private lastFailureAt = 0
  private closed = false
  /** A write of presence or membership failed: write the whole state again at the next heartbeat. */
  private stateStale = false
  /** Member entries whose removal failed, by room: removed again with the rest of the state. */
  private readonly staleEntries = new Map<string, Set<string>>()
  /** Issue 12 (resume-redis): subscribe commands not answered yet, for settled(). */
  private readonly subscribing = new Set<Promise<unknown>>()
  /** Issue 12 (fence): fences this instance asked for, waiting for the owner's answer. */
  private readonly pendingFences = new Map<string, { timer: NodeJS.Timeout, resolve: (seq: number | null) => void }>()
  /** Issue 12 (fence): fences addressed here → markers received so far, and when the first came. */
  private readonly openFences = new Map<string, { received: number, at: number }>()

  constructor (options: RedisAdapterOptions) {
    super()
    this.options = options
    this.instanceId = options.instanceId ?? randomUUID()
    this.prefix = options.prefix ?? 'wsr:'
    this.receiptTimeoutMs = options.receiptTimeoutMs ?? 1000
    this.presenceTtlMs = options.presenceTtlMs ?? 30_000
    const clients = createRedisClients(options)
    this.pub = clients.pub
    this.sub = clients.sub
    this.ownsPublisher = clients.ownsPublisher
    this.cluster = clients.cluster
    this.sharded = clients.cluster || options.sharded === true
    this.channels.set(this.allChannel, { kind: 'all' })
    this.channels.set(this.receiptChannel, { kind: 'all' })
  }

  private get heartbeatMs (): number { return Math.max(100, Math.floor(this.presenceTtlMs / 3)) }
  private get allChannel (): string { return `${this.prefix}all` }
  private get receiptChannel (): string { return `${this.prefix}rcpt:${this.instanceId}` }
  // A room's channel and member set share the hash tag {room}: one slot, so one shard serves both.
  private roomChannel (room: string): string { return `${this.prefix}r:{${room}}` }
  private membersKey (room: string): string { return `${this.prefix}m:{${room}}` }
  private userChannel (userId: string): string { return `${this.prefix}u:${userId}` }
  // Presence keys share the hash tag {presence}: a heartbeat or a presence read is one pipeline to one shard.
  private presenceKey (instanceId: string): string { return `${this.prefix}{presence}:${instanceId}` }
  private get instancesKey (): string { return `${this.prefix}{presence}:instances` }

  async attach (host: AdapterHost): Promise<void> {
    this.host = host
    for (const client of [this.pub, this.sub]) {
      // Every error event is handled: ioredis would otherwise print it per retry.
      // A Cluster emits 'error' for one unreachable node; it is down only when it closes.
      client.on('error', (err: Error) => { if (this.cluster) this.failing(err); else this.connectionLost(err) })
      client.on('close', () => this.connectionLost())
    }
    this.pub.on('ready', () => { this.publisherReady() })
    this.sub.on('ready', () => { this.subscriberReady() })
    this.sub.on(this.sharded ? 'smessage' : 'message', (channel: string, message: string) => this.onMessage(channel, message))
    // ioredis queues these until the Cluster is ready, then keeps them across slot moves.
    if (this.cluster) for (const channel of this.channels.keys()) this.subscribe(channel)
    const connecting = Promise.all([connect(this.pub), connect(this.sub)])
    if (this.options.requireBroker === true) {
      const timeoutMs = this.options.connectTimeoutMs ?? 3000
      const reached = await Promise.race([
        connecting.then(() => true, () => false),
        new Promise<boolean>((resolve) => setTimeout(resolve, timeoutMs, false).unref())
      ])
      if (!reached) {
        await this.close()
        throw new FST_WSR_BROKER_UNAVAILABLE(timeoutMs)
      }
    } else {
      connecting.catch(() => {})
    }
    this.heartbeatTimer = setInterval(() => { this.heartbeat() }, this.heartbeatMs)
    this.heartbeatTimer.unref()
  }

  private connectionLost (err?: Error): void {
    if (this.down || this.closed) return
    this.down = true
    this.downSince = Date.now()
    this.outages++
    this.host?.log.warn({ err, instanceId: this.instanceId }, 'redis adapter: connection to Redis lost; cross-instance sends fail with BROKER_UNAVAILABLE until it returns')
  }

  /**
   * A command failed while the connections are up: logged once per streak of
   * failures. A streak ends after a heartbeat interval without a failure
   * (ioredis's own topology events repeat while a master is down, so they
   * cannot tell that it is over).
   */
  private failing (err: unknown): void {
    this.lastFailureAt = Date.now()
    if (this.failingSince !== null || this.down || this.closed) return
    this.failingSince = this.lastFailureAt
    this.host?.log.warn({ err, instanceId: this.instanceId }, 'redis adapter: Redis commands failing (a shard failing over?); cross-instance sends to it fail with BROKER_UNAVAILABLE')
  }

  private recovered (): void {
    if (this.failingSince === null) return
    const failedForMs = Date.now() - this.failingSince
    this.failingSince = null
    this.host?.log.info({ failedForMs, instanceId: this.instanceId }, 'redis adapter: Redis commands succeed again')
  }

  private get connected (): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready'
  }

  private publisherReady (): void {
    this.maybeRestored()
    // Redis may have restarted empty: write this instance's presence and memberships again.
    this.heartbeat()
    this.rewriteState()
  }

  /**
   * This instance's presence and memberships, written again: one command per
   * key, since the keys live on different slots. The presence hash is
   * replaced whole (one key, one MULTI), so users whose removal failed go too.
   */
  private rewriteState (): void {
    const key = this.presenceKey(this.instanceId)
    const counts: Record<string, number> = {}
    for (const [userId, ids] of this.users) counts[userId] = ids.size
    this.write((redis) => {
      const replace = redis.multi().del(key)
      if (this.users.size > 0) replace.hset(key, counts).pexpire(key, this.presenceTtlMs)
      return replace.exec()
    })
    // Removals first: an entry that left and came back is added again just after.
    for (const [room, entries] of this.staleEntries) {
      this.staleEntries.delete(room)
      for (const entry of entries) this.removeEntry(room, entry)
    }
    for (const [room, ids] of this.rooms) {
      const entries = [...ids].map((id) => this.memberEntry(id))
      this.write((redis) => redis.sadd(this.membersKey(room), ...entries))
    }
  }

  private removeEntry (room: string, entry: string): void {
    this.write((redis) => redis.srem(this.membersKey(room), entry), () => {
      const entries = this.staleEntries.get(room)
      if (entries === undefined) this.staleEntries.set(room, new Set([entry]))
      else entries.add(entry)
    })
  }

  private subscriberReady (): void {
    // On a Cluster ioredis renews sharded subscriptions itself (see attach).
    if (this.cluster) {
      this.maybeRestored()
      return
    }
    const channels = [...this.channels.keys()]
    const subscribing = this.sharded ? this.subscribeSharded(channels) : this.sub.subscribe(...channels)
    subscribing.then(() => this.maybeRestored(), () => {})
  }

  /** Sharded channels live on different slots: subscribe one by one. */
  private async subscribeSharded (channels: string[]): Promise<void> {
    await Promise.all(channels.map(async (channel) => await this.sub.ssubscribe(channel)))
  }

  private maybeRestored (): void {
    if (!this.down || !this.connected) return
    const duration = Date.now() - this.downSince
    this.down = false
    this.failingSince = null
    if (!this.everConnected) {
      this.everConnected = true
      return
    }
    this.lastOutageMs = duration
    this.outageMsTotal += duration
    this.host?.log.info({ outageMs: duration, instanceId: this.instanceId }, 'redis adapter: connection to Redis restored, subscriptions renewed')
  }

  private heartbeat (): void {
    if (this.pub.status !== 'ready') return
    const now = Date.now()
    // A heartbeat interval without a failure ends a streak of them.
    if (this.failingSince !== null && now - this.lastFailureAt > this.heartbeatMs) this.recovered()
    if (this.stateStale) {
      this.stateStale = false
      this.rewriteState()
    }
    // The score is the instance's expiry, so instances with different TTLs coexist.
    // Both keys carry the {presence} tag: one slot, so one pipeline even on a Cluster.
    this.write((redis) => redis.pipeline()
      .zadd(this.instancesKey, now + this.presenceTtlMs, this.instanceId)
      .zremrangebyscore(this.instancesKey, '-inf', now)
      .pexpire(this.presenceKey(this.instanceId), this.presenceTtlMs)
      .exec())
  }

  private memberEntry (connectionId: string): string {
    return `${this.instanceId}|${connectionId}|${this.userOf.get(connectionId) ?? ''}`
  }

  private want (channel: string, target: FanoutTarget): void {
    this.channels.set(channel, target)
    if (this.cluster) {
      this.subscribe(channel)
      return
    }
    if (this.sub.status !== 'ready') return
    this.track(this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel))
  }

  private track (subscribing: Promise<unknown>): void {
    this.subscribing.add(subscribing)
    const done = (): void => { this.subscribing.delete(subscribing) }
    subscribing.then(done, done)
  }

  /**
   * Issue 12 (resume-redis): resolves once every subscription asked for so
   * far is active; rejects when one failed or the subscriber is not
   * connected (frames published now would not arrive).
   */
  async settled (): Promise<void> {
    if (this.sub.status !== 'ready') throw new Error('redis adapter: the subscriber connection is not ready')
    await Promise.all([...this.subscribing])
  }

  /**
   * A sharded subscription on a Cluster. ioredis refuses it while no
   * subscriber serves the channel's slot (a master just died, say): then it
   * is tried again until it holds or the channel is no longer wanted.
   */
  private subscribe (channel: string): void {
    const subscribing = this.sub.ssubscribe(channel)
    this.track(subscribing)
    subscribing.catch((err: unknown) => {
      if (this.closed || !this.channels.has(channel)) return
      this.subscribeFailures++
      this.failing(err)
      setTimeout(() => { if (!this.closed && this.channels.has(channel)) this.subscribe(channel) }, 250).unref()
    })
  }

  private unwant (channel: string): void {
    this.channels.delete(channel)
    if (!this.cluster && this.sub.status !== 'ready') return
    const unsubscribing = this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel)
    unsubscribing.catch(() => {})
  }

  /**
   * Fire-and-forget write of shared state. A failure while Redis is
   * connected (a shard failing over) is counted and logged once; the state is
   * written again at the next heartbeat.
   */
  private write (run: (redis: RedisClient) => Promise<unknown>, onFailure?: () => void): void {
    if (this.pub.status !== 'ready') {
      onFailure?.()
      return
    }
    run(this.pub).catch((err: unknown) => {
      this.writeFailures++
      this.stateStale = true
      onFailure?.()
      this.failing(err)
    })
  }

  override addConnection (connectionId: string, userId: string): void {
    super.addConnection(connectionId, userId)
    const count = this.users.get(userId)?.size ?? 0
    if (count === 1) this.want(this.userChannel(userId), { kind: 'user', userId })
    this.write((redis) => redis.hset(this.presenceKey(this.instanceId), userId, count))
  }

  override removeConnection (connectionId: string): void {
    const userId = this.userOf.get(connectionId)
    if (userId === undefined) return
    const rooms = this.roomsOf(connectionId)
    const entry = this.memberEntry(connectionId)
    super.removeConnection(connectionId)
    for (const room of rooms) {
      this.removeEntry(room, entry)
      if (!this.rooms.has(room)) this.unwant(this.roomChannel(room))
    }
    const count = this.users.get(userId)?.size ?? 0
    if (count === 0) {
      this.unwant(this.userChannel(userId))
      this.write((redis) => redis.hdel(this.presenceKey(this.instanceId), userId))
    } else {
      this.write((redis) => redis.hset(this.presenceKey(this.instanceId), userId, count))
    }
  }

  override join (connectionId: string, room: string): boolean {
    if (!super.join(connectionId, room)) return false
    this.write((redis) => redis.sadd(this.membersKey(room), this.memberEntry(connectionId)))
    if (this.rooms.get(room)?.size === 1) this.want(this.roomChannel(room), { kind: 'room', room })
    return true
  }

  override leave (connectionId: string, room: string): boolean {
    const entry = this.memberEntry(connectionId)
    if (!super.leave(connectionId, room)) return false
    this.removeEntry(room, entry)
    if (!this.rooms.has(room)) this.unwant(this.roomChannel(room))
    return true
  }

  /** Instances whose heartbeat is recent. */
  private async liveInstances (): Promise<string[]> {
    return await this.pub.zrangebyscore(this.instancesKey, Date.now(), '+inf')
  }

  /** Members on every live instance; this instance's alone while Redis is away. */
  override async members (room: string): Promise<RoomMember[]> {
    if (!this.connected) return await super.members(room)
    try {
      return (await this.liveMembers(room)).map(({ connectionId, userId }) => ({ connectionId, userId }))
    } catch {
      return await super.members(room)
    }
  }

  /** The room's member set, without the entries of instances whose presence expired. */
  private async liveMembers (room: string): Promise<Array<RoomMember & { instanceId: string }>> {
    const [entries, live] = await Promise.all([this.pub.smembers(this.membersKey(room)), this.liveInstances()])
    const alive = new Set(live)
    alive.add(this.instanceId)
    const members: Array<RoomMember & { instanceId: string }> = []
    for (const entry of entries) {
      const [instanceId, connectionId, userId] = entry.split('|')
      if (instanceId !== undefined && alive.has(instanceId) && connectionId !== undefined && userId !== undefined) members.push({ instanceId, connectionId, userId })
    }
    return members
  }

  /**
   * Whether an instance holding members of the room missed a frame: the
   * publish reached fewer instances than the room's member set names (its
   * subscription was being renewed after a failover or a slot move, or it
   * joined a moment ago). The member set is read only when the reach is
   * below what it was, so a steady room costs nothing more; a member leaving
   * costs one read.
   */
  private async missedInstances (room: string, instances: number): Promise<boolean> {
    const known = this.reach.get(room)
    if (known !== undefined && instances >= known) {
      if (instances > known) this.reach.set(room, instances)
      return false
    }
    let holders: number
    try {
      holders = new Set((await this.liveMembers(room)).map((m) => m.instanceId).filter((id) => id !== this.instanceId)).size
    } catch {
      // The reach dropped and cannot be checked: say so rather than claim it was fine.
      return known !== undefined
    }
    if (this.reach.size >= MAX_REACH_ROOMS) this.reach.clear()
    this.reach.set(room, holders)
    return instances < holders
  }

  /** One read per live instance's presence hash, as one pipeline: the keys share the {presence} slot. */
  private async presenceRead (instances: string[], read: (pipeline: ChainableCommander, key: string) => void): Promise<unknown[]> {
    if (instances.length === 0) return []
    const pipeline = this.pub.pipeline()
    for (const instanceId of instances) read(pipeline, this.presenceKey(instanceId))
    const results = await pipeline.exec() ?? []
    return results.map(([err, value]) => {
      if (err !== null) throw err
      return value
    })
  }

  override async presence (userId: string): Promise<{ online: boolean, connections: number }> {
    if (!this.connected) return await super.presence(userId)
    try {
      const live = await this.liveInstances()
      const counts = await this.presenceRead(live, (pipeline, key) => pipeline.hget(key, userId))
      const connections = counts.reduce((total: number, count) => total + Number(count ?? 0), 0)
      return { online: connections > 0, connections }
    } catch {
      return await super.presence(userId)
    }
  }

  override async onlineUsers (): Promise<Array<{ userId: string, connections: number }>> {
    if (!this.connected) return await super.onlineUsers()
    try {
      const live = await this.liveInstances()
      const hashes = await this.presenceRead(live, (pipeline, key) => pipeline.hgetall(key))
      const totals = new Map<string, number>()
      for (const hash of hashes) {
        for (const [userId, count] of Object.entries(hash as Record<string, string>)) totals.set(userId, (totals.get(userId) ?? 0) + Number(count))
      }
      return [...totals].filter(([, connections]) => connections > 0).map(([userId, connections]) => ({ userId, connections }))
    } catch {
      return await super.onlineUsers()
    }
  }

  override async publish (target: FanoutTarget, text: string, meta: PublishMeta): Promise<RemoteOutcome | null> {
    if (this.pub.status !== 'ready') {
      this.publishFailures++
      return { instances: 0, error: BROKER_UNAVAILABLE }
    }
    const channel = this.channelOf(target)
    const header: Header = { o: this.instanceId, t: meta.type }
    if (target.except !== undefined) header.e = target.except
    if (meta.droppable) header.d = 1
    if (meta.mid !== undefined) header.m = meta.mid
    const receiptId = this.options.receipts === true ? randomBytes(8).toString('hex') : undefined
    if (receiptId !== undefined) header.r = receiptId
    const message = `${JSON.stringify(header)}\n${text}`
    let receivers: number
    try {
      receivers = Number(this.sharded ? await this.pub.spublish(channel, message) : await this.pub.publish(channel, message))
    } catch (err) {
      this.publishFailures++
      this.failing(err)
      return { instances: 0, error: BROKER_UNAVAILABLE }
    }
    // This instance hears its own publish when it is subscribed to the channel.
    const instances = Math.max(0, receivers - (this.channels.has(channel) ? 1 : 0))
    const [outcome, missed] = await Promise.all([
      receiptId === undefined || instances === 0 ? { instances } : this.awaitReceipts(receiptId, instances),
      target.kind === 'room' ? this.missedInstances(target.room, instances) : false
    ])
    if (!missed) return outcome
    this.missedPublishes++
    return { ...outcome, error: SUBSCRIPTION_MISSING }
  }

  private channelOf (target: FanoutTarget): string {
    return target.kind === 'room' ? this.roomChannel(target.room) : target.kind === 'user' ? this.userChannel(target.userId) : this.allChannel
  }

  /**
   * Issue 12 (fence): a marker on the channel of each target, behind every
   * frame published there so far (one subscriber gets one channel's
   * messages in publish order, sharded or not), then the owner's answer:
   * it sends it once every marker reached it, so it has handed over every
   * earlier frame for the session. Null when no answer came in time.
   */
  async fence (request: FenceRequest, timeoutMs: number): Promise<number | null> {
    if (this.pub.status !== 'ready') throw new Error('redis adapter: Redis cannot be reached; the fence was not sent')
    const fenceId = randomBytes(8).toString('hex')
    const channels = [...new Set(request.targets.map((target) => this.channelOf(target)))]
    const marker: FenceMarker = { o: this.instanceId, f: fenceId, w: request.instanceId, s: request.sessionId, n: channels.length }
    if (request.takeover === true) marker.k = 1
    const message = `${JSON.stringify(marker)}\n`
    const answered = new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        this.pendingFences.delete(fenceId)
        resolve(null)
      }, timeoutMs)
      this.pendingFences.set(fenceId, { timer, resolve })
    })
    try {
      await Promise.all(channels.map(async (channel) => await (this.sharded ? this.pub.spublish(channel, message) : this.pub.publish(channel, message))))
    } catch (err) {
      const pending = this.pendingFences.get(fenceId)
      if (pending !== undefined) clearTimeout(pending.timer)
      this.pendingFences.delete(fenceId)
      this.publishFailures++
      this.failing(err)
      throw new Error('redis adapter: the fence could not be published', { cause: err })
    }
    return await answered
  }

  /** Issue 12: an event for a session `instanceId` took over from this instance (an agent run's), on its receipt channel. */
  async forward (instanceId: string, sessionId: string, text: string): Promise<void> {
    if (this.pub.status !== 'ready') throw new Error('redis adapter: Redis cannot be reached; the event was not forwarded')
    const channelName = `${this.prefix}rcpt:${instanceId}`
    const message: Forwarded = { fw: sessionId, x: text }
    const body = JSON.stringify(message)
    try {
      await (this.sharded ? this.pub.spublish(channelName, body) : this.pub.publish(channelName, body))
    } catch (err) {
      this.publishFailures++
      this.failing(err)
      throw new Error('redis adapter: the event could not be forwarded', { cause: err })
    }
  }

  /** A fence marker: counted when it is addressed here; the last one is answered once the router dealt with the session. */
  private onFenceMarker (marker: FenceMarker): void {
    if (marker.w !== this.instanceId || this.host === null) return
    const now = Date.now()
    const open = this.openFences.get(marker.f) ?? { received: 0, at: now }
    open.received++
    if (open.received < marker.n) {
      this.openFences.set(marker.f, open)
      for (const [fenceId, { at }] of this.openFences) {
        if (at > now - FENCE_FORGET_MS && this.openFences.size <= MAX_OPEN_FENCES) break
        this.openFences.delete(fenceId)
      }
      return
    }
    this.openFences.delete(marker.f)
    const settled = this.host.fenced?.(marker.s, marker.k === 1, marker.o) ?? Promise.resolve(0)
    settled.then((seq) => {
      const answer: FenceAnswer = { f: marker.f, seq }
      const channelName = `${this.prefix}rcpt:${marker.o}`
      const text = JSON.stringify(answer)
      this.write((redis) => this.sharded ? redis.spublish(channelName, text) : redis.publish(channelName, text))
    }, (err: unknown) => {
      this.host?.log.warn({ err, sessionId: marker.s, instanceId: this.instanceId }, 'redis adapter: a resume fence could not be answered')
    })
  }

  private awaitReceipts (receiptId: string, expected: number): Promise<RemoteOutcome> {
    return new Promise((resolve) => {
      const pending: PendingReceipt = {
        expected,
        received: 0,
        delivered: 0,
        failed: [],
        resolve,
        timer: setTimeout(() => {
          this.pendingReceipts.delete(receiptId)
          resolve(receiptOutcome(pending))
        }, this.receiptTimeoutMs)
      }
      this.pendingReceipts.set(receiptId, pending)
    })
  }

  private onMessage (channel: string, message: string): void {
    if (channel === this.receiptChannel) {
      this.onReceipt(message)
      return
    }
    const newline = message.indexOf('\n')
    if (newline === -1) return
    let header: Header | FenceMarker
    try {
      header = JSON.parse(message.slice(0, newline)) as Header | FenceMarker
    } catch {
      return
    }
    if ('f' in header) {
      this.onFenceMarker(header)
      return
    }
    if (header.o === this.instanceId || this.host === null) return
    const channelTarget = this.channels.get(channel)
    if (channelTarget === undefined) return
    const target: FanoutTarget = header.e === undefined ? channelTarget : { ...channelTarget, except: header.e }
    const text = message.slice(newline + 1)
    this.host.deliverLocal(target, header.t, text, header.d === 1, header.m).then((delivery) => {
      if (delivery.failed.length > 0) {
        this.host?.log.info({ messageType: header.t, origin: header.o, failed: delivery.failed.slice(0, 20), failedCount: delivery.failed.length }, 'redis adapter: remote fan-out had local failures')
      }
      if (header.r === undefined) return
      const receipt: Receipt = {
        r: header.r,
        i: this.instanceId,
        delivered: delivery.targets - delivery.failed.length,
        failed: delivery.failed.map((f) => ({ connectionId: f.connectionId, reason: f.reason, instanceId: this.instanceId }))
      }
      const channelName = `${this.prefix}rcpt:${header.o}`
      const answer = JSON.stringify(receipt)
      this.write((redis) => this.sharded ? redis.spublish(channelName, answer) : redis.publish(channelName, answer))
    }, () => {})
  }

  private onReceipt (message: string): void {
    let receipt: Receipt | FenceAnswer | Forwarded
    try {
      receipt = JSON.parse(message) as Receipt | FenceAnswer | Forwarded
    } catch {
      return
    }
    if ('fw' in receipt) {
      if (typeof receipt.fw === 'string' && typeof receipt.x === 'string') this.host?.deliverToSession?.(receipt.fw, receipt.x)
      return
    }
    if ('f' in receipt) {
      const fence = this.pendingFences.get(receipt.f)
      if (fence === undefined) return
      clearTimeout(fence.timer)
      this.pendingFences.delete(receipt.f)
      fence.resolve(typeof receipt.seq === 'number' ? receipt.seq : 0)
      return
    }
    const pending = this.pendingReceipts.get(receipt.r)
    if (pending === undefined) return
    pending.received++
    pending.delivered += receipt.delivered
    pending.failed.push(...receipt.failed)
    if (pending.received >= pending.expected) {
      clearTimeout(pending.timer)
      this.pendingReceipts.delete(receipt.r)
      pending.resolve(receiptOutcome(pending))
    }
  }

  status (): Record<string, unknown> {
    return {
      kind: 'redis',
      instanceId: this.instanceId,
      connected: this.connected,
      degraded: !this.connected,
      downForMs: this.down ? Date.now() - this.downSince : 0,
      outages: this.outages,
      lastOutageMs: this.lastOutageMs,
      outageMsTotal: this.outageMsTotal + (this.down && this.outages > 0 ? Date.now() - this.downSince : 0),
      requireBroker: this.options.requireBroker === true,
      publishFailures: this.publishFailures,
      missedPublishes: this.missedPublishes,
      // Commands failing while connected (one shard without a master, say); 0 when they succeed.
      failingForMs: this.failingSince === null ? 0 : Date.now() - this.failingSince,
      writeFailures: this.writeFailures,
      subscribeFailures: this.subscribeFailures,
      subscriptions: this.channels.size,
      sharded: this.sharded,
      cluster: this.cluster
    }
  }

  override async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.heartbeatTimer !== null) clearInterval(this.heartbeatTimer)
    for (const [receiptId, pending] of this.pendingReceipts) {
      clearTimeout(pending.timer)
      this.pendingReceipts.delete(receiptId)
      pending.resolve(receiptOutcome(pending))
    }
    for (const [fenceId, fence] of this.pendingFences) {
      clearTimeout(fence.timer)
      this.pendingFences.delete(fenceId)
      fence.resolve(null)
    }
    this.openFences.clear()
    if (this.pub.status === 'ready') {
      // One pipeline per slot: the presence keys share one; each room's member set has its own.
      const leaving: Array<Promise<unknown>> = [
        this.pub.pipeline().del(this.presenceKey(this.instanceId)).zrem(this.instancesKey, this.instanceId).exec()
      ]
      for (const [room, ids] of this.rooms) leaving.push(this.pub.srem(this.membersKey(room), ...[...ids].map((id) => this.memberEntry(id))))
      await Promise.all(leaving.map(async (command) => await command.catch(() => {})))
    }
    this.reach.clear()
    this.sub.disconnect()
    if (this.ownsPublisher) this.pub.disconnect()
    await super.close()
  }
}

function receiptOutcome (pending: PendingReceipt): RemoteOutcome {
  const timedOut = pending.expected - pending.received
  const outcome = { instances: pending.expected, delivered: pending.delivered, failed: pending.failed, timedOut }
  return timedOut > 0 ? { ...outcome, error: RemoteFailure.RECEIPT_TIMEOUT } : outcome
}

async function connect (client: RedisClient): Promise<void> {
  if (client.status === 'ready') return
  if (client.status === 'wait') {
    await client.connect()
    return
  }
  await new Promise<void>((resolve, reject) => {
    client.once('ready', resolve)
    client.once('end', () => reject(new Error('redis connection ended')))
  })
}
