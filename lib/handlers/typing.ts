import type { FastifyBaseLogger } from 'fastify'
import type { BuiltinHost } from '../builtin-host.js'
import { RoomPayload, requireMember } from './membership.js'

/** One user typing in one room. */
interface TypingEntry {
  readonly room: string
  readonly userId: string
  /** The connection that last started it: left out of the broadcast; its close stops it. */
  connectionId: string
  /** Logger of that connection, for a fan-out that fails outright. */
  log: FastifyBaseLogger
  /** When `typing: true` was last broadcast; repeats within `typingThrottleMs` are not. */
  broadcastAt: number
  /** When it stops by itself unless started again (`typingTimeoutMs` after the last start). */
  expiresAt: number
}

/**
 * Who is typing where, for one router. Lookups are by room then user (a
 * user's second tab continues the same indicator); each connection indexes
 * its own entries so a close releases them without scanning everyone.
 * Expiry is one interval per router, running only while someone types.
 */
export class TypingTracker {
  private readonly byRoom = new Map<string, Map<string, TypingEntry>>()
  private readonly byConnection = new Map<string, Set<TypingEntry>>()
  private readonly throttleMs: number
  private readonly timeoutMs: number
  /** A tenth of the timeout, 5 ms to 1 s: an indicator expires at most one tick late. */
  private readonly tickMs: number
  private timer: NodeJS.Timeout | null = null

  constructor (private readonly router: BuiltinHost) {
    this.throttleMs = router.config.typingThrottleMs
    this.timeoutMs = router.config.typingTimeoutMs
    this.tickMs = Math.min(1000, Math.max(5, Math.floor(this.timeoutMs / 10)))
  }

  /** Users typing, over all rooms. */
  get size (): number {
    let size = 0
    for (const users of this.byRoom.values()) size += users.size
    return size
  }

  /** Connections with an indicator (the per-connection index). */
  get connections (): number {
    return this.byConnection.size
  }

  /** Whether the expiry interval runs. */
  get sweeping (): boolean {
    return this.timer !== null
  }

  start (connectionId: string, userId: string, log: FastifyBaseLogger, room: string, now: number): void {
    let users = this.byRoom.get(room)
    let entry = users?.get(userId)
    if (entry === undefined) {
      entry = { room, userId, connectionId, log, broadcastAt: 0, expiresAt: now + this.timeoutMs }
      if (users === undefined) {
        users = new Map()
        this.byRoom.set(room, users)
      }
      users.set(userId, entry)
      this.index(entry)
      if (this.timer === null) {
        this.timer = setInterval(sweepTyping, this.tickMs, this)
        this.timer.unref()
      }
    } else {
      entry.expiresAt = now + this.timeoutMs
      if (entry.connectionId !== connectionId) this.moveTo(entry, connectionId, log)
      if (now - entry.broadcastAt < this.throttleMs) {
        this.router.countBuiltin('typing.throttled')
        return
      }
    }
    entry.broadcastAt = now
    this.broadcast(entry, true, connectionId)
  }

  /** Stop a user's indicator in a room; false when there was none (nothing to tell anyone). */
  stop (connectionId: string, userId: string, room: string): boolean {
    const entry = this.byRoom.get(room)?.get(userId)
    if (entry === undefined) return false
    this.remove(entry)
    this.broadcast(entry, false, connectionId)
    return true
  }

  /** A closed connection stops typing everywhere it typed. */
  connectionClosed (connectionId: string): void {
    const entries = this.byConnection.get(connectionId)
    if (entries === undefined) return
    for (const entry of entries) {
      this.remove(entry)
      this.broadcast(entry, false, connectionId)
    }
  }

  /** @internal run by the interval; exposed with a chosen clock for tests. */
  sweep (now: number): void {
    for (const users of this.byRoom.values()) {
      for (const entry of users.values()) {
        if (entry.expiresAt > now) continue
        this.remove(entry)
        this.router.countBuiltin('typing.expired')
        this.broadcast(entry, false, entry.connectionId)
      }
    }
  }

  private broadcast (entry: TypingEntry, typing: boolean, except: string): void {
    this.router.countBuiltin('typing.broadcast')
    // Not awaited: an indicator is best effort, and the fan-out counts and logs its own failures.
    this.router.sendToRoom(entry.room, 'typing', { room: entry.room, userId: entry.userId, typing }, { except, droppable: true })
      .catch((err: unknown) => entry.log.error({ err, room: entry.room, environment: this.router.config.environment }, 'typing broadcast failed'))
  }

  private index (entry: TypingEntry): void {
    const entries = this.byConnection.get(entry.connectionId)
    if (entries === undefined) this.byConnection.set(entry.connectionId, new Set([entry]))
    else entries.add(entry)
  }

  private unindex (entry: TypingEntry): void {
    const entries = this.byConnection.get(entry.connectionId)
    if (entries !== undefined && entries.delete(entry) && entries.size === 0) this.byConnection.delete(entry.connectionId)
  }

  /** The user went on typing in another tab: that tab owns the indicator now. */
  private moveTo (entry: TypingEntry, connectionId: string, log: FastifyBaseLogger): void {
    this.unindex(entry)
    entry.connectionId = connectionId
    entry.log = log
    this.index(entry)
  }

  private remove (entry: TypingEntry): void {
    const users = this.byRoom.get(entry.room)
    if (users !== undefined && users.delete(entry.userId) && users.size === 0) this.byRoom.delete(entry.room)
    this.unindex(entry)
    if (this.byConnection.size === 0 && this.timer !== null) {
      clearInterval(this.timer)
      this.timer = null
    }
  }
}

function sweepTyping (tracker: TypingTracker): void {
  tracker.sweep(Date.now())
}

/**
 * `typing_started` / `typing_stopped` `{ room }` from a member of the room →
 * `typing` `{ room, userId, typing }` to the room's other connections
 * (droppable). A repeated start within `typingThrottleMs` is not
 * re-broadcast but keeps the indicator alive; a start without a stop expires
 * after `typingTimeoutMs` (`typing: false`); a closing connection stops its
 * indicators. The frames themselves get an `ack` when they have an id.
 */
export function registerTyping (router: BuiltinHost): TypingTracker {
  const tracker = new TypingTracker(router)
  router.state.set('typing', tracker)
  router.onConnectionClosed((connectionId) => tracker.connectionClosed(connectionId))
  router.on('typing_started', { schema: RoomPayload }, (payload, ctx) => {
    requireMember(router, ctx.connectionId, payload.room)
    tracker.start(ctx.connectionId, ctx.userId, ctx.log, payload.room, Date.now())
  })
  router.on('typing_stopped', { schema: RoomPayload }, (payload, ctx) => {
    // A user who left the room while typing may still stop; otherwise only members may speak.
    if (!tracker.stop(ctx.connectionId, ctx.userId, payload.room)) requireMember(router, ctx.connectionId, payload.room)
  })
  return tracker
}
