import { randomBytes, randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterHost, FailedTarget, FanoutTarget, PublishMeta, RemoteOutcome, RoomMember } from '../adapter.js'
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
 * Delivery across instances is at most once. What is lost is reported: a
 * publish while Redis is unreachable fails at once with `BROKER_UNAVAILABLE`
 * (no offline queue replays stale frames later), and with receipts on, other
 * instances report their per-connection outcomes or count as timed out.
 */

const BROKER_UNAVAILABLE = RemoteFailure.BROKER_UNAVAILABLE

export interface RedisAdapterOptions {
  /** A `redis://` URL, or an ioredis client for commands (duplicated for subscriptions). */
  redis: string | Redis
  /** Key and channel prefix. Default `wsr:`. */
  prefix?: string
  /** Use sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7+), for Redis Cluster. Default false. */
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
}

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

const clientOptions: RedisOptions = {
  lazyConnect: true,
  // Fail at once while disconnected: no queue replaying stale frames later.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResubscribe: false,
  // Try again quickly so subscriptions are back within a second of Redis.
  retryStrategy: (times: number) => Math.min(50 * times, 250)
}

export class RedisAdapter extends MemoryAdapter {
  readonly instanceId: string
  private readonly pub: Redis
  private readonly sub: Redis
  private readonly ownsPublisher: boolean
  private readonly prefix: string
  private readonly sharded: boolean
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
  private closed = false

  constructor (options: RedisAdapterOptions) {
    super()
    this.options = options
    this.instanceId = options.instanceId ?? randomUUID()
    this.prefix = options.prefix ?? 'wsr:'
    this.sharded = options.sharded === true
    this.receiptTimeoutMs = options.receiptTimeoutMs ?? 1000
    this.presenceTtlMs = options.presenceTtlMs ?? 30_000
    if (typeof options.redis === 'string') {
      this.pub = new Redis(options.redis, clientOptions)
      this.ownsPublisher = true
    } else {
      this.pub = options.redis
      this.ownsPublisher = false
    }
    this.sub = this.pub.duplicate(clientOptions)
    this.channels.set(this.allChannel, { kind: 'all' })
    this.channels.set(this.receiptChannel, { kind: 'all' })
  }

  private get allChannel (): string { return `${this.prefix}all` }
  private get receiptChannel (): string { return `${this.prefix}rcpt:${this.instanceId}` }
  private roomChannel (room: string): string { return `${this.prefix}r:${room}` }
  private userChannel (userId: string): string { return `${this.prefix}u:${userId}` }
  private presenceKey (instanceId: string): string { return `${this.prefix}p:${instanceId}` }
  private membersKey (room: string): string { return `${this.prefix}m:${room}` }
  private get instancesKey (): string { return `${this.prefix}instances` }

  async attach (host: AdapterHost): Promise<void> {
    this.host = host
    for (const client of [this.pub, this.sub]) {
      // Every error event is handled: ioredis would otherwise print it per retry.
      client.on('error', (err: Error) => this.connectionLost(err))
      client.on('close', () => this.connectionLost())
    }
    this.pub.on('ready', () => { this.publisherReady() })
    this.sub.on('ready', () => { this.subscriberReady() })
    this.sub.on(this.sharded ? 'smessage' : 'message', (channel: string, message: string) => this.onMessage(channel, message))
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
    this.heartbeatTimer = setInterval(() => { this.heartbeat() }, Math.max(100, Math.floor(this.presenceTtlMs / 3)))
    this.heartbeatTimer.unref()
  }

  private connectionLost (err?: Error): void {
    if (this.down || this.closed) return
    this.down = true
    this.downSince = Date.now()
    this.outages++
    this.host?.log.warn({ err, instanceId: this.instanceId }, 'redis adapter: connection to Redis lost; cross-instance sends fail with BROKER_UNAVAILABLE until it returns')
  }

  private get connected (): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready'
  }

  private publisherReady (): void {
    this.maybeRestored()
    // Redis may have restarted empty: write this instance's presence and memberships again.
    this.heartbeat()
    const pipeline = this.pub.pipeline()
    for (const [userId, ids] of this.users) pipeline.hset(this.presenceKey(this.instanceId), userId, ids.size)
    for (const [room, ids] of this.rooms) {
      for (const id of ids) pipeline.sadd(this.membersKey(room), this.memberEntry(id))
    }
    pipeline.exec().catch(() => {})
  }

  private subscriberReady (): void {
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
    // The score is the instance's expiry, so instances with different TTLs coexist.
    this.pub.pipeline()
      .zadd(this.instancesKey, now + this.presenceTtlMs, this.instanceId)
      .zremrangebyscore(this.instancesKey, '-inf', now)
      .pexpire(this.presenceKey(this.instanceId), this.presenceTtlMs)
      .exec()
      .catch(() => {})
  }

  private memberEntry (connectionId: string): string {
    return `${this.instanceId}|${connectionId}|${this.userOf.get(connectionId) ?? ''}`
  }

  private want (channel: string, target: FanoutTarget): void {
    this.channels.set(channel, target)
    if (this.sub.status !== 'ready') return
    const subscribing = this.sharded ? this.sub.ssubscribe(channel) : this.sub.subscribe(channel)
    subscribing.catch(() => {})
  }

  private unwant (channel: string): void {
    this.channels.delete(channel)
    if (this.sub.status !== 'ready') return
    const unsubscribing = this.sharded ? this.sub.sunsubscribe(channel) : this.sub.unsubscribe(channel)
    unsubscribing.catch(() => {})
  }

  /** Fire-and-forget write of shared state; an outage is reported by the connection events. */
  private write (run: (redis: Redis) => Promise<unknown>): void {
    if (this.pub.status !== 'ready') return
    run(this.pub).catch(() => {})
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
      this.write((redis) => redis.srem(this.membersKey(room), entry))
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
    this.write((redis) => redis.srem(this.membersKey(room), entry))
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
      const [entries, live] = await Promise.all([this.pub.smembers(this.membersKey(room)), this.liveInstances()])
      const alive = new Set(live)
      alive.add(this.instanceId)
      const members: RoomMember[] = []
      for (const entry of entries) {
        const [instanceId, connectionId, userId] = entry.split('|')
        if (instanceId !== undefined && alive.has(instanceId) && connectionId !== undefined && userId !== undefined) members.push({ connectionId, userId })
      }
      return members
    } catch {
      return await super.members(room)
    }
  }

  override async presence (userId: string): Promise<{ online: boolean, connections: number }> {
    if (!this.connected) return await super.presence(userId)
    try {
      const live = await this.liveInstances()
      const counts = await Promise.all(live.map(async (instanceId) => await this.pub.hget(this.presenceKey(instanceId), userId)))
      const connections = counts.reduce((total, count) => total + Number(count ?? 0), 0)
      return { online: connections > 0, connections }
    } catch {
      return await super.presence(userId)
    }
  }

  override async onlineUsers (): Promise<Array<{ userId: string, connections: number }>> {
    if (!this.connected) return await super.onlineUsers()
    try {
      const live = await this.liveInstances()
      const hashes = await Promise.all(live.map(async (instanceId) => await this.pub.hgetall(this.presenceKey(instanceId))))
      const totals = new Map<string, number>()
      for (const hash of hashes) {
        for (const [userId, count] of Object.entries(hash)) totals.set(userId, (totals.get(userId) ?? 0) + Number(count))
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
    const channel = target.kind === 'room' ? this.roomChannel(target.room) : target.kind === 'user' ? this.userChannel(target.userId) : this.allChannel
    const header: Header = { o: this.instanceId, t: meta.type }
    if (target.except !== undefined) header.e = target.except
    if (meta.droppable) header.d = 1
    const receiptId = this.options.receipts === true ? randomBytes(8).toString('hex') : undefined
    if (receiptId !== undefined) header.r = receiptId
    const message = `${JSON.stringify(header)}\n${text}`
    let receivers: number
    try {
      receivers = Number(this.sharded ? await this.pub.spublish(channel, message) : await this.pub.publish(channel, message))
    } catch {
      this.publishFailures++
      return { instances: 0, error: BROKER_UNAVAILABLE }
    }
    // This instance hears its own publish when it is subscribed to the channel.
    const instances = Math.max(0, receivers - (this.channels.has(channel) ? 1 : 0))
    if (receiptId === undefined || instances === 0) return { instances }
    return await this.awaitReceipts(receiptId, instances)
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
    let header: Header
    try {
      header = JSON.parse(message.slice(0, newline)) as Header
    } catch {
      return
    }
    if (header.o === this.instanceId || this.host === null) return
    const channelTarget = this.channels.get(channel)
    if (channelTarget === undefined) return
    const target: FanoutTarget = header.e === undefined ? channelTarget : { ...channelTarget, except: header.e }
    const text = message.slice(newline + 1)
    this.host.deliverLocal(target, header.t, text, header.d === 1).then((delivery) => {
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
    let receipt: Receipt
    try {
      receipt = JSON.parse(message) as Receipt
    } catch {
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
      subscriptions: this.channels.size,
      sharded: this.sharded
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
    if (this.pub.status === 'ready') {
      const pipeline = this.pub.pipeline()
      pipeline.del(this.presenceKey(this.instanceId))
      pipeline.zrem(this.instancesKey, this.instanceId)
      for (const [room, ids] of this.rooms) {
        for (const id of ids) pipeline.srem(this.membersKey(room), this.memberEntry(id))
      }
      await pipeline.exec().catch(() => {})
    }
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

async function connect (client: Redis): Promise<void> {
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
