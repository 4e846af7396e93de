import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { Connection } from '../connection.js'
import type { Identity } from '../identity.js'
import { CloseCode, ResumeFailure, SendFailure } from '../errors.js'
import { SENT, failure, writeNow, exceedsBytes, type Handover, type SendLimits, type SendResult } from '../send.js'
import { sameSecretHash, type ClaimResult, type PeekedSession, type ResumeStore } from './store.js'
import { Session, numbered } from './session.js'
import { issueToken, readToken } from './token.js'
import { ResumeCounters, type ResumeFailReason, type ResumeStatsSnapshot } from './counters.js'
import { replay, withTimeout, type ReplayOutcome } from './replay.js'
// resume-redis: a claim from another instance holds the events that arrive meanwhile.
import { Arrivals } from './arrivals.js'

/**
 * Resumable delivery on one instance (issue 12, docs/delivery.md): numbers
 * must-deliver events per session, keeps them in the store, parks a
 * session whose socket closed, and resumes it for a client that comes back
 * with its token. The router calls in through a few marked hooks; this part
 * calls back only through `DeliveryHost`, never the router itself.
 */

export interface ResumeSettings {
  readonly store: ResumeStore
  readonly windowMs: number
  readonly maxSessions: number
  readonly replayRatePerSecond: number
  readonly agentGraceMs: number
  readonly storeTimeoutMs: number
}

/** What a `connection_established` carries with resume on. */
export interface ResumeGreeting {
  readonly token: string
  readonly windowMs: number
}

/** A frame that arrived while the resume was being decided, handled once it is. */
export interface QueuedFrame {
  readonly data: RawData
  readonly isBinary: boolean
}

/** What the engine needs of the router that owns it. */
export interface DeliveryHost {
  readonly log: FastifyBaseLogger
  readonly environment: string
  roomsOf: (connectionId: string) => readonly string[]
  join: (connectionId: string, room: string) => boolean
  /**
   * Adopt the socket as a connection (its `message` listener not attached
   * yet) and greet it: under `resumed.id` with the token it presented, or
   * under a new id (then `open` is called for its fresh session).
   */
  adopt: (socket: WebSocket, request: FastifyRequest, identity: Identity, resumed: { id: string, greeting: ResumeGreeting } | null) => Connection
  /** Handle the queued frames, then the socket's. */
  startReading: (conn: Connection, queued: readonly QueuedFrame[]) => void
  /** Send a frame that answers nothing and is not numbered (`resumed`, `resume_failed`). */
  sendControl: (conn: Connection, type: string, payload: unknown) => void
  /** A must-deliver write found the client not reading: close it with 1013 (it parks). */
  closeStuck: (conn: Connection) => void
  /** Tell the close listeners (agent runs, typing) that `conn` is gone. */
  releaseConnection: (conn: Connection) => void
  /** The session is over: out of its rooms and user list. */
  forgetConnection: (connectionId: string) => void
  /** A resuming socket closed before it was adopted: release its admission. */
  abandonAdmission: (userId: string) => void
  /** Whether the router's shutdown has begun (`app.close()`): a resume decided from then on is not adopted. */
  readonly closing: boolean
  /** Shutdown: close a socket that was never adopted with 1001, as every connection is (terminated if it does not answer). */
  goAway: (socket: WebSocket) => void
  // resume-redis: a claim from another instance joins the session's rooms before it claims.
  /** Register a connection id with the adapter (rooms and user targets name it from now on). */
  addConnection: (connectionId: string, userId: string) => void
  /** Resolves once the adapter's subscriptions asked for so far are active. */
  settled: () => Promise<void>
  /**
   * Fence the owner of a session (the adapter's `fence`): resolves with the
   * owner's last seq once it has dealt with every event published before
   * for the session's targets; null when it did not answer in time;
   * undefined when the adapter cannot fence.
   */
  fence: (owner: string, sessionId: string, userId: string, rooms: readonly string[], timeoutMs: number, takeover: boolean) => Promise<number | null | undefined>
  /** A newer connection resumes this connection's session: close it with 4001 (its session parks). */
  takeOver: (conn: Connection) => void
  /** An event for a session that moved to another instance (the adapter's `forward`). */
  forward: (instanceId: string, sessionId: string, text: string) => Promise<void>
}

/** Frames that are never numbered: the session's own control frames and answers without an id. */
const UNNUMBERED_TYPES = new Set(['connection_established', 'resumed', 'resume_failed', 'reconnect', 'error'])

/** Server close codes after which a session is not parked: the server refused the client. */
const ENDING_CLOSES = new Set<number>([CloseCode.POLICY_VIOLATION, CloseCode.INTERNAL_ERROR, 1002, 1003, 1007, CloseCode.MESSAGE_TOO_BIG])

const FAILURE_CODES: Record<ResumeFailReason, { code: ResumeFailure, message: string }> = {
  unknown: { code: ResumeFailure.RESUME_UNKNOWN, message: 'No session matches this resume token: a fresh session was started' },
  expired: { code: ResumeFailure.RESUME_EXPIRED, message: 'The session expired before it was resumed: a fresh session was started' },
  forbidden: { code: ResumeFailure.RESUME_FORBIDDEN, message: 'This resume token belongs to another user: a fresh session was started' },
  busy: { code: ResumeFailure.RESUME_BUSY, message: 'Another connection holds or is resuming this session: a fresh session was started' },
  invalid_seq: { code: ResumeFailure.INVALID_RESUME_SEQ, message: 'lastSeq is not a seq this session sent: a fresh session was started' },
  unavailable: { code: ResumeFailure.BROKER_UNAVAILABLE, message: 'The resume store, or the instance holding the session, did not answer in time: a fresh session was started' }
}

/** How often an event counted but not yet readable is waited for (20 ms each) before it is a gap. */
const SETTLE_TRIES = 10

type ClaimOutcome = Extract<ClaimResult, { ok: true }> | { ok: false, reason: ResumeFailReason }

export class ResumeEngine {
  readonly counters = new ResumeCounters()
  private readonly settings: ResumeSettings
  private readonly store: ResumeStore
  private readonly host: DeliveryHost
  private readonly limits: SendLimits
  /** The instance id, the owner in the store. */
  readonly owner: string
  private readonly sessions = new Map<string, Session>()
  /** Parked sessions in park order: the first is the one parked longest ago (one window for all). */
  private readonly parked = new Set<Session>()
  private timer: NodeJS.Timeout | null = null
  private timerAt = 0
  private closed = false
  /** resume-redis: sessions being claimed from another instance, and what their old owner stored. */
  private readonly arrivals = new Arrivals()
  /** Resumes not decided yet: `close` waits for them, so that a session they claimed is parked again before the store closes. */
  private readonly pending = new Set<Promise<void>>()
  private mids = 0

  constructor (settings: ResumeSettings, host: DeliveryHost, limits: SendLimits, owner: string | undefined) {
    this.settings = settings
    this.store = settings.store
    this.host = host
    this.limits = limits
    this.owner = owner ?? randomUUID()
  }

  /** The `resume`/`lastSeq` query of an upgrade asking to resume; null when it does not ask. */
  requested (query: unknown): { token: unknown, lastSeq: unknown } | null {
    if (query === null || typeof query !== 'object') return null
    const { resume, lastSeq } = query as Record<string, unknown>
    return resume === undefined ? null : { token: resume, lastSeq }
  }

  /** A fresh session for a new connection; its token goes into `connection_established`. */
  open (conn: Connection): ResumeGreeting {
    const { token, secretHash } = issueToken(conn.id)
    const session = new Session(conn, 0, secretHash)
    this.sessions.set(conn.id, session)
    this.create(session)
    return { token, windowMs: this.settings.windowMs }
  }

  /**
   * The session into the store. A create that fails (the store unreachable a
   * moment, a Cluster client replacing its connections) is made again before
   * the session's next append or park: what was numbered meanwhile and not
   * stored is then a gap its resume reports, not a session gone for good.
   */
  private create (session: Session): void {
    session.created = true
    const created = this.store.create({ sessionId: session.id, userId: session.userId, secretHash: session.secretHash, owner: this.owner }, this.settings.windowMs)
    session.lastStoreCall = created
    created.catch((err: unknown) => {
      session.created = false
      this.storeFailed(session, 'create', err)
    })
  }

  /** The session a connection id names, if this instance holds it. */
  sessionOf (connectionId: string): Session | undefined {
    return this.sessions.get(connectionId)
  }

  /** resume-redis: an id for one fan-out call, shared by its targets here and on other instances. */
  nextMid (): string {
    return `${this.owner}:${(++this.mids).toString(36)}`
  }

  /**
   * A fan-out target (resume-redis): held while its session is being claimed
   * from another instance, numbered through its session when this instance
   * holds one; undefined when neither (an ordinary connection).
   */
  route (connectionId: string, text: string, droppable: boolean, mid: string | undefined): Handover | undefined {
    if (!droppable && this.arrivals.hold(connectionId, text, droppable, mid)) return 'BUFFERED'
    const session = this.sessions.get(connectionId)
    return session === undefined ? undefined : this.deliver(session, text, droppable, mid)
  }

  /**
   * resume-redis (fence): another instance resuming this session asks
   * whether everything handed over here for it is in the store. Every event
   * handed over so far has been numbered and its append made (the adapter
   * hands frames over in the order they arrive); the store applies one
   * session's calls in order, so once the last one settled, all have.
   * Resolves with the last seq as it was when asked (0: not held here).
   * `takeover`: the session was live here; its socket is closed first (4001)
   * and the session parks, so the asker can claim it.
   */
  async settled (sessionId: string, takeover: boolean, asker?: string): Promise<number> {
    const session = this.sessions.get(sessionId)
    if (session === undefined) return 0
    // A resume elsewhere that found the session live here (checked there: secret and user): the newest connection wins.
    if (takeover && session.state === 'live' && session.conn !== null && session.conn.isOpen) this.host.takeOver(session.conn)
    // The asker claims it next: what this instance's agent runs still send it, once the store refuses, goes there.
    if (asker !== undefined) session.fencedBy = asker
    const lastSeq = session.lastSeq
    await session.lastStoreCall?.catch(noop)
    return lastSeq
  }

  /** Whether a single send of this frame is numbered. */
  isNumbered (type: string, id: unknown, droppable: boolean, numberedOption: boolean): boolean {
    if (droppable) return false
    return numberedOption || (id === undefined && !UNNUMBERED_TYPES.has(type))
  }

  /**
   * One fan-out target that has a session: number a must-deliver frame,
   * store it, and write it when a socket is live. A stored event is
   * `BUFFERED` (it will be delivered, on this socket or on a resume), also
   * when the client was too slow and is closed with 1013 for it.
   */
  deliver (session: Session, text: string, droppable: boolean, mid?: string): Handover {
    if (droppable) {
      const conn = session.conn
      if (session.state !== 'live' || conn === null) {
        this.counters.droppedWhileAway++
        return SendFailure.DROPPED
      }
      return writeNow(conn, text, this.limits, true)
    }
    // resume-redis: the old owner stored it before this instance claimed the session; the replay sends it.
    if (this.arrivals.storedElsewhere(session.id, mid)) return 'BUFFERED'
    // resume-redis: resumed on another instance: this instance's own events for it (agent runs) go there; fan-outs
    // reach it there by its subscriptions.
    if (session.moved) {
      if (mid !== undefined) return 'BUFFERED'
      this.forwardAfter(session, text)
      return 'BUFFERED'
    }
    const seq = session.lastSeq + 1
    const framed = numbered(text, seq)
    if (exceedsBytes(framed, this.limits.maxOutboundBytes)) return SendFailure.TOO_LARGE
    session.lastSeq = seq
    if (!session.created) this.create(session)
    const appended = this.store.append(session.id, this.owner, [mid === undefined ? { seq, text: framed } : { seq, text: framed, mid }])
    session.lastStoreCall = appended
    // A fan-out (it has a mid) reaches the session's new owner through its own subscriptions; a single send does not.
    const own = mid === undefined ? text : undefined
    appended.then((ok) => { if (!ok) this.storeRefused(session, own) }, (err: unknown) => this.storeFailed(session, 'append', err))
    const conn = session.conn
    if (session.state !== 'live' || conn === null) return 'BUFFERED'
    const outcome = writeNow(conn, framed, this.limits, false)
    if (outcome === SendFailure.BACKPRESSURE) {
      this.host.closeStuck(conn)
      return 'BUFFERED'
    }
    // Closing already: the close parks the session, and the event waits in it.
    return outcome === SendFailure.NOT_OPEN ? 'BUFFERED' : outcome
  }

  /** A numbered single send (`sendTo`, an agent event): as one fan-out target. */
  sendNumbered (session: Session, text: string): SendResult {
    const outcome = this.deliver(session, text, false)
    return outcome === 'WRITTEN' || outcome === 'BUFFERED' ? SENT : failure(outcome)
  }

  /**
   * The socket of `conn` closed (or the server is closing it): park its
   * session for the window, keeping its rooms, unless the close ended the
   * session (a policy or protocol close by the server, or the client's own
   * 1000). True when parked: the connection must stay in its rooms.
   */
  park (conn: Connection, peerCode: number | null): boolean {
    const session = this.sessions.get(conn.id)
    if (session === undefined || session.conn !== conn) return false
    const sent = conn.closeSent
    const ended = this.closed || (sent !== null ? ENDING_CLOSES.has(sent) : peerCode === CloseCode.NORMAL)
    if (ended) {
      this.end(session, false)
      return false
    }
    const now = Date.now()
    session.state = 'parked'
    session.conn = null
    session.expiresAt = now + this.settings.windowMs
    session.graceAt = now + this.settings.agentGraceMs
    this.parked.add(session)
    if (!session.created) this.create(session)
    const parked = this.store.park(session.id, this.owner, this.host.roomsOf(session.id), this.settings.windowMs)
    session.lastStoreCall = parked
    parked.then((ok) => { if (!ok) this.storeRefused(session) }, (err: unknown) => this.storeFailed(session, 'park', err))
    while (this.parked.size > this.settings.maxSessions) {
      this.counters.evicted++
      this.end(this.parked.values().next().value as Session, true)
    }
    this.schedule()
    return true
  }

  /** Whether the close listeners of a closed connection wait (its session is parked, its agent runs go on). */
  holdsRelease (conn: Connection): boolean {
    const session = this.sessions.get(conn.id)
    return session !== undefined && session.holder === conn && session.state === 'parked' && !session.released
  }

  /**
   * A client asks to resume (`?resume=<token>&lastSeq=<n>`). Its frames are
   * queued (the socket paused) until the outcome is sent: `connection_established`
   * under the session's id, the missed events, `resumed`; or
   * `connection_established` of a fresh session, then `resume_failed`.
   */
  resume (socket: WebSocket, request: FastifyRequest, identity: Identity, asked: { token: unknown, lastSeq: unknown }): void {
    const queued: QueuedFrame[] = []
    let gone = false
    const onMessage = (data: RawData, isBinary: boolean): void => { queued.push({ data, isBinary }) }
    const onClose = (): void => { gone = true }
    socket.on('message', onMessage)
    socket.on('close', onClose)
    socket.removeAllListeners('error')
    socket.on('error', onSocketError)
    socket.pause()
    const decided = this.claim(asked, identity.userId).then(async (claimed) => {
      socket.off('message', onMessage)
      socket.off('close', onClose)
      if (gone || socket.readyState !== 1 || this.host.closing) {
        // Not adopted: the client left meanwhile, or shutdown began (app.close()) and it goes away
        // like every connection, once its session is parked again (it may resume elsewhere).
        this.host.abandonAdmission(identity.userId)
        const reparked = claimed.ok ? this.reparkUnadopted(readToken(asked.token)?.sessionId as string, identity.userId, claimed) : undefined
        if (!gone && socket.readyState === 1) this.host.goAway(socket)
        await reparked
        return
      }
      // adopt() replaces this listener with the router's own.
      socket.off('error', onSocketError)
      if (!claimed.ok) {
        this.refuse(socket, request, identity, claimed.reason, queued)
        return
      }
      this.resumeClaimed(socket, request, identity, asked.token as string, Number(asked.lastSeq), claimed, queued)
    }).catch((err: unknown) => {
      // claim() settles every failure itself; reaching this is a bug here (or in adopting the socket).
      this.host.log.error({ err, environment: this.host.environment }, 'resume bookkeeping failed')
      socket.terminate()
    })
    this.pending.add(decided)
    // (decided never rejects: the catch above ends it.)
    decided.finally(() => this.pending.delete(decided)).catch(noop)
  }

  private async claim (asked: { token: unknown, lastSeq: unknown }, userId: string): Promise<ClaimOutcome> {
    const presented = readToken(asked.token)
    if (presented === null) return { ok: false, reason: 'unknown' }
    const lastSeq = typeof asked.lastSeq === 'string' && /^\d{1,15}$/.test(asked.lastSeq) ? Number(asked.lastSeq) : -1
    // The newest connection takes over: a socket of this session still open here (half-open, most
    // likely: the client would not resume otherwise) is closed with 4001, and the session parks.
    const local = this.sessions.get(presented.sessionId)
    if (local !== undefined && local.state === 'live' && local.conn !== null && local.conn.isOpen && local.userId === userId && sameSecretHash(local.secretHash, presented.secretHash)) {
      this.host.takeOver(local.conn)
    }
    let claimed: ClaimResult
    try {
      let peeked = await this.peek(presented, userId)
      if (peeked !== null && peeked.live && peeked.owner !== this.owner && peeked.ownerAlive) {
        // resume-redis: live on another instance: it closes its socket and parks the session (a fence that takes over).
        if (await this.fence(peeked, presented.sessionId, userId, true) === null) return { ok: false, reason: 'unavailable' }
        peeked = await this.peek(presented, userId)
      }
      if (peeked !== null && !peeked.live) {
        // resume-redis: with a shared store, join the session's rooms before taking it (arrivals.ts), also when a
        // copy is held here: another instance may have claimed it since, and this copy be stale.
        await this.joinFirst(presented.sessionId, userId, peeked.rooms)
        // Then the owner confirms it has dealt with every event published before the join (the fence).
        if (peeked.owner !== this.owner && peeked.ownerAlive) {
          const fenced = await this.fence(peeked, presented.sessionId, userId, false)
          if (fenced === null) {
            this.leaveFirst(presented.sessionId)
            return { ok: false, reason: 'unavailable' }
          }
          if (fenced !== undefined) this.arrivals.fenced(presented.sessionId, fenced)
        }
      }
      claimed = await withTimeout(this.store.claim(presented.sessionId, presented.secretHash, userId, this.owner), this.settings.storeTimeoutMs)
    } catch (err) {
      this.leaveFirst(presented.sessionId)
      this.counters.storeFailures++
      this.host.log.warn({ err, environment: this.host.environment }, 'resume failed: the resume store did not answer')
      return { ok: false, reason: 'unavailable' }
    }
    if (!claimed.ok) {
      this.leaveFirst(presented.sessionId)
      return claimed
    }
    if (lastSeq < 0 || lastSeq > claimed.lastSeq) {
      this.leaveFirst(presented.sessionId)
      // The token was right: the session is ours now, and it ends here.
      const session = this.sessions.get(presented.sessionId)
      if (session !== undefined) this.end(session, true)
      else this.store.drop(presented.sessionId, this.owner).catch(noop)
      return { ok: false, reason: 'invalid_seq' }
    }
    return claimed
  }

  /** resume-redis: the session as a shared store holds it, without taking it; null when the store is not shared or the claim will refuse. */
  private async peek (presented: { sessionId: string, secretHash: string }, userId: string): Promise<PeekedSession | null> {
    if (this.store.peek === undefined) return null
    return await withTimeout(this.store.peek(presented.sessionId, presented.secretHash, userId), this.settings.storeTimeoutMs)
  }

  /**
   * resume-redis: ask the owner to confirm that it has dealt with every event
   * published before for the session (`takeover`: and to close its live
   * socket first). Null (logged) when it did not answer in time: the
   * session stays with it.
   */
  private async fence (peeked: PeekedSession, sessionId: string, userId: string, takeover: boolean): Promise<number | null | undefined> {
    const fenced = await this.host.fence(peeked.owner, sessionId, userId, peeked.rooms, this.settings.storeTimeoutMs, takeover)
    if (fenced === null) {
      this.host.log.warn({ sessionId, owner: peeked.owner, takeover, timeoutMs: this.settings.storeTimeoutMs, environment: this.host.environment }, 'resume failed: the instance holding the session did not confirm its events in time; the session stays with it')
    }
    return fenced
  }

  /**
   * resume-redis: before claiming a session another instance may hold,
   * join its rooms and user, hold what arrives for it, and wait for the
   * subscriptions, so that no event falls between the old owner's last
   * append and this instance.
   */
  private async joinFirst (sessionId: string, userId: string, rooms: readonly string[]): Promise<void> {
    this.arrivals.open(sessionId)
    this.host.addConnection(sessionId, userId)
    for (const room of rooms) this.host.join(sessionId, room)
    await withTimeout(this.host.settled(), this.settings.storeTimeoutMs)
  }

  /** resume-redis: the claim from another instance failed: out of the rooms joined for it. */
  private leaveFirst (sessionId: string): void {
    if (!this.arrivals.isHolding(sessionId)) return
    this.arrivals.abandon(sessionId)
    this.host.forgetConnection(sessionId)
  }

  private refuse (socket: WebSocket, request: FastifyRequest, identity: Identity, reason: ResumeFailReason, queued: readonly QueuedFrame[]): void {
    this.counters.failed[reason]++
    const conn = this.host.adopt(socket, request, identity, null)
    const { code, message } = FAILURE_CODES[reason]
    this.host.sendControl(conn, 'resume_failed', { reason, code, message })
    this.host.startReading(conn, queued)
  }

  private resumeClaimed (socket: WebSocket, request: FastifyRequest, identity: Identity, token: string, lastSeq: number, claimed: Extract<ClaimResult, { ok: true }>, queued: readonly QueuedFrame[]): void {
    const conn = this.host.adopt(socket, request, identity, { id: (readToken(token) as { sessionId: string }).sessionId, greeting: { token, windowMs: this.settings.windowMs } })
    let session = this.sessions.get(conn.id)
    if (session === undefined) {
      // Claimed from another instance: continue its numbering, take its rooms.
      session = new Session(conn, claimed.lastSeq, (readToken(token) as { secretHash: string }).secretHash)
      this.sessions.set(conn.id, session)
      for (const room of claimed.rooms) this.host.join(conn.id, room)
    } else {
      // resume-redis: held elsewhere since this copy was parked here: number on from the store's lastSeq, in its rooms.
      if (claimed.lastSeq > session.lastSeq) session.lastSeq = claimed.lastSeq
      session.moved = false
      session.fencedBy = null
      for (const room of claimed.rooms) this.host.join(conn.id, room)
      this.parked.delete(session)
      // The close listeners were told at the agent grace: the new connection starts afresh.
      session.released = false
    }
    session.state = 'replaying'
    session.conn = conn
    session.holder = conn
    const live = session
    // resume-redis: claimed from another instance: what arrived meanwhile is numbered after the claimed lastSeq, then replayed.
    if (this.arrivals.isHolding(conn.id)) {
      this.arrivals.release(conn.id, this.store, claimed.lastSeq, this.settings.storeTimeoutMs).then((held) => {
        for (const event of held) this.deliver(live, event.text, event.droppable, event.mid)
        this.startReplay(live, conn, lastSeq, queued)
      }, (err: unknown) => {
        this.counters.storeFailures++
        this.host.log.warn({ err, sessionId: live.id, environment: this.host.environment }, 'resume from another instance stopped: the resume store did not answer')
        if (conn.isOpen) this.host.closeStuck(conn)
      })
      return
    }
    this.startReplay(live, conn, lastSeq, queued)
  }

  private startReplay (live: Session, conn: Connection, lastSeq: number, queued: readonly QueuedFrame[]): void {
    replay(live, conn, lastSeq, {
      store: this.store,
      limits: this.limits,
      ratePerSecond: this.settings.replayRatePerSecond,
      readTimeoutMs: this.settings.storeTimeoutMs,
      settleTries: SETTLE_TRIES,
      goLive: (outcome) => this.goLive(live, conn, outcome, queued)
    }).then((result) => {
      if (typeof result === 'object') return
      if (result === 'store') {
        this.counters.storeFailures++
        this.host.log.warn({ sessionId: live.id, environment: this.host.environment }, 'resume replay stopped: the resume store did not answer')
      }
      // Stopped with the socket still open (not drained in time, or the store failed): it parks and may resume again.
      if (conn.isOpen) this.host.closeStuck(conn)
    }, (err: unknown) => {
      this.host.log.error({ err, environment: this.host.environment }, 'resume replay failed')
      if (conn.isOpen) this.host.closeStuck(conn)
    })
  }

  /** Caught up: from here on, events are written as they come; `resumed` goes first. */
  private goLive (session: Session, conn: Connection, outcome: ReplayOutcome, queued: readonly QueuedFrame[]): void {
    session.state = 'live'
    this.counters.resumed++
    this.counters.replayedEvents += outcome.replayed
    const payload: { replayed: number, lastSeq: number, gap?: { from: number, to: number } } = { replayed: outcome.replayed, lastSeq: session.lastSeq }
    if (outcome.gap !== null) {
      this.counters.gaps++
      payload.gap = outcome.gap
    }
    this.host.sendControl(conn, 'resumed', payload)
    this.host.startReading(conn, queued)
  }

  /** Claimed for a socket that closed meanwhile (or at shutdown): parked again, as it was. Resolves once the store took it. */
  private async reparkUnadopted (sessionId: string, userId: string, claimed: Extract<ClaimResult, { ok: true }>): Promise<void> {
    const session = this.sessions.get(sessionId)
    if (session === undefined) {
      // resume-redis: claimed from another instance, and nobody here holds it: parked, its events would be lost silently.
      // Dropped instead: the next resume is told `unknown` and starts afresh.
      this.leaveFirst(sessionId)
      this.store.drop(sessionId, this.owner).catch(noop)
      this.host.log.debug({ sessionId, userId }, 'resume: the client left while its session was claimed from another instance; dropped')
      return
    }
    const windowMs = Math.max(1, session.expiresAt - Date.now())
    await this.store.park(sessionId, this.owner, claimed.rooms, windowMs).catch(noop)
  }

  /**
   * Drop the session for good: its stream, its rooms, and (if not yet told)
   * the close listeners. A session whose window passed is left to the store
   * to expire, so that a late claim is answered `expired`, not `unknown`.
   */
  private end (session: Session, forget: boolean, expired = false): void {
    if (this.sessions.get(session.id) !== session) return
    this.sessions.delete(session.id)
    this.parked.delete(session)
    if (!expired) this.store.drop(session.id, this.owner).catch(noop)
    if (!forget) return
    // resume-redis: a claim of this session is in flight here: its connection id keeps the rooms it joined first.
    if (!this.arrivals.isHolding(session.id)) this.host.forgetConnection(session.id)
    if (!session.released) {
      session.released = true
      this.host.releaseConnection(session.holder)
    }
  }

  /** One timer for every parked session: the earliest due (agent grace or window end). */
  private schedule (): void {
    if (this.closed) return
    const first = this.parked.values().next().value
    if (first === undefined) return
    const at = first.released ? first.expiresAt : Math.min(first.graceAt, first.expiresAt)
    if (this.timer !== null && this.timerAt <= at) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timerAt = at
    this.timer = setTimeout(sweepParked, Math.max(0, at - Date.now()), this)
    this.timer.unref()
  }

  /** @internal the timer's pass: give up agent runs past their grace, end sessions past their window. */
  sweep (now = Date.now()): void {
    this.timer = null
    for (const session of this.parked) {
      if (session.graceAt > now) break
      if (!session.released) {
        session.released = true
        this.host.releaseConnection(session.holder)
      }
    }
    for (const session of this.parked) {
      if (session.expiresAt > now) break
      this.counters.expired++
      this.end(session, true, true)
    }
    // The first unreleased session may sit behind released ones: schedule from the earliest time left.
    let next = Infinity
    for (const session of this.parked) {
      next = Math.min(next, session.released ? session.expiresAt : session.graceAt)
      if (session.expiresAt >= next) break
    }
    if (next !== Infinity && !this.closed) {
      this.timerAt = next
      this.timer = setTimeout(sweepParked, Math.max(0, next - now), this)
      this.timer.unref()
    }
  }

  /**
   * The store refused an append or park: another owner holds the session, or
   * it is gone. When the instance that fenced it took it (resume-redis), the
   * session has moved: it leaves this instance's rooms, and the refused
   * event (`text`, unnumbered) and those its agent runs still send go there.
   */
  private storeRefused (session: Session, text?: string): void {
    if (this.sessions.get(session.id) === session && session.fencedBy !== null && session.state === 'parked') {
      if (!session.moved) {
        session.moved = true
        // (Unless a resume here is joining it again right now.)
        if (!this.arrivals.isHolding(session.id)) this.host.forgetConnection(session.id)
      }
      if (text !== undefined) this.forward(session, text)
      return
    }
    this.counters.storeFailures++
    if (this.sessions.get(session.id) !== session) return
    this.host.log.info({ sessionId: session.id, environment: this.host.environment }, 'resume: the store no longer holds this session for this instance; its parked copy is dropped')
    if (session.state === 'parked') this.end(session, true)
  }

  /** An event of a moved session, after the store calls made before it: forwarded in the order they were made. */
  private forwardAfter (session: Session, text: string): void {
    const forward = (): void => this.forward(session, text)
    session.lastStoreCall = (session.lastStoreCall ?? Promise.resolve()).then(forward, forward)
  }

  private forward (session: Session, text: string): void {
    this.host.forward(session.fencedBy as string, session.id, text).catch((err: unknown) => this.storeFailed(session, 'forward', err))
  }

  private storeFailed (session: Session, operation: string, err: unknown): void {
    this.counters.storeFailures++
    if (session.storeFailed) return
    session.storeFailed = true
    // Once per session: a later resume reports what is missing as a gap.
    this.host.log.warn({ err, sessionId: session.id, operation, environment: this.host.environment }, 'resume store call failed; events of this session may be missing from a replay (reported as a gap)')
  }

  snapshot (): ResumeStatsSnapshot {
    return this.counters.snapshot(this.sessions.size, this.parked.size)
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    // Bounded: every store call of a claim has its storeTimeoutMs.
    await Promise.allSettled([...this.pending])
    await this.store.close()
  }
}

function sweepParked (engine: ResumeEngine): void {
  engine.sweep()
}

function onSocketError (this: WebSocket): void {
  this.terminate()
}

function noop (): void {}
