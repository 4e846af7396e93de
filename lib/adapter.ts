import type { FastifyBaseLogger } from 'fastify'

/**
 * Where connections, users and rooms are tracked, and how a fan-out reaches
 * connections on other server instances. The router delivers to its own
 * sockets; the adapter says which of its sockets a target names and carries
 * the frame to other instances (a Redis pub/sub adapter overrides `publish`).
 * The in-memory default serves one instance.
 */

/** Whom a fan-out is for. `except` leaves one connection out (the sender's, say). */
export type FanoutTarget =
  | { readonly kind: 'user', readonly userId: string, readonly except?: string | undefined }
  | { readonly kind: 'room', readonly room: string, readonly except?: string | undefined }
  | { readonly kind: 'all', readonly except?: string | undefined }

export interface RoomMember {
  readonly connectionId: string
  readonly userId: string
}

export interface FailedTarget {
  readonly connectionId: string
  readonly reason: string
  /** The instance that holds the connection (remote targets only). */
  readonly instanceId?: string
}

/** What other instances did with a published frame; `null` from a single-instance adapter. */
export interface RemoteOutcome {
  /** Other instances that received the frame. */
  readonly instances: number
  /** Set when publishing failed: `BROKER_UNAVAILABLE`, for example. */
  readonly error?: string
  /** With receipts: connections the other instances delivered to. */
  readonly delivered?: number
  /** With receipts: their failed connections. */
  readonly failed?: FailedTarget[]
  /** With receipts: instances that received the frame but did not answer in time (`RECEIPT_TIMEOUT`). */
  readonly timedOut?: number
}

/** What a fan-out did on this instance. */
export interface LocalDelivery {
  readonly targets: number
  readonly failed: FailedTarget[]
  /** Targets whose socket took the whole frame at once. */
  readonly written?: number
  /** Targets that accepted it into their send buffer. */
  readonly buffered?: number
  /** Targets that skipped a droppable frame (also in `failed`). */
  readonly dropped?: number
}

export interface PublishMeta {
  readonly type: string
  readonly droppable: boolean
  /**
   * Issue 12 (resume-redis): the fan-out's message id, one per fan-out call,
   * carried to other instances so a session resumed elsewhere can tell an
   * event it replays from the same event arriving live.
   */
  readonly mid?: string
}

/** What the router offers an adapter: delivery to its own sockets. */
export interface AdapterHost {
  /** `mid`: the publishing instance's message id of this fan-out (issue 12), when it sent one. */
  deliverLocal: (target: FanoutTarget, type: string, text: string, droppable: boolean, mid?: string) => Promise<LocalDelivery>
  /**
   * Issue 12 (fence): every frame handed over so far has been dealt with for
   * this session (its store writes settled). Resolves with the session's
   * last seq as it was when asked, 0 when this instance does not hold it.
   * `takeover`: a newer connection resumes it elsewhere: a live socket of
   * the session here is closed first (4001) and the session parked.
   */
  fenced?: (sessionId: string, takeover?: boolean, asker?: string) => Promise<number>
  /**
   * Issue 12 (agent runs follow a session): an event another instance's
   * agent run produced for a session this instance took over from it,
   * numbered and delivered here as the session's own.
   */
  deliverToSession?: (sessionId: string, text: string) => void
  readonly log: FastifyBaseLogger
}

/**
 * Issue 12 (fence): an instance resuming a session that another instance
 * (`instanceId`) owns asks it to confirm that it has dealt with every frame
 * published before the request for the session's targets (its rooms, its
 * user, everyone).
 */
export interface FenceRequest {
  readonly instanceId: string
  readonly sessionId: string
  readonly targets: readonly FanoutTarget[]
  /** The session is live on the owner: it closes that socket (4001) and parks the session before answering. */
  readonly takeover?: boolean
}

export interface RouterAdapter {
  /**
   * True when the adapter reaches no other instance (its `publish` does
   * nothing): a fan-out that names no local connection then ends as
   * `NO_TARGET` without encoding its frame.
   */
  readonly singleInstance?: boolean
  /**
   * Called once when the app starts (`onReady`); an adapter that must reach
   * a broker may reject here to make `ready()` reject.
   */
  attach?: (host: AdapterHost) => void | Promise<void>
  /** Broker state for the stats snapshot. */
  status?: () => Record<string, unknown>
  /** Whether a user has connections, and how many, on every instance the adapter sees. */
  presence: (userId: string) => Promise<{ online: boolean, connections: number }>
  /** Every user online, with connection counts. */
  onlineUsers: () => Promise<Array<{ userId: string, connections: number }>>
  /** Register a connection on this instance. */
  addConnection: (connectionId: string, userId: string) => void
  /** Forget a connection and leave all of its rooms. */
  removeConnection: (connectionId: string) => void
  /** Add a connection to a room; false when it already was a member. */
  join: (connectionId: string, room: string) => boolean
  /** Remove a connection from a room; false when it was not a member. */
  leave: (connectionId: string, room: string) => boolean
  /** Rooms of a local connection. */
  roomsOf: (connectionId: string) => readonly string[]
  /** Whether a local connection is in a room (no copy: the per-frame check of typing and messages). */
  isMember: (connectionId: string, room: string) => boolean
  /** How many rooms a local connection is in. */
  roomCount: (connectionId: string) => number
  /** Members of a room (every instance the adapter can see). */
  members: (room: string) => Promise<RoomMember[]>
  /** Ids of the local connections a target names. */
  localTargets: (target: FanoutTarget) => string[]
  /** Carry an encoded frame to other instances. */
  publish: (target: FanoutTarget, text: string, meta: PublishMeta) => Promise<RemoteOutcome | null>
  /**
   * Resolves once the subscriptions asked for so far (by `addConnection` and
   * `join`) are active, so frames published from now on reach this instance.
   * Issue 12 (resume-redis): a resume from another instance waits for it. An
   * adapter without subscriptions leaves it out.
   */
  settled?: () => Promise<void>
  /**
   * Issue 12 (fence): carry a fence to the owning instance behind every
   * frame published so far for the targets, and resolve with its answer
   * (`AdapterHost.fenced` there: the session's last seq), or null when it
   * did not answer within `timeoutMs`. Rejects when the broker cannot be
   * reached. An adapter without other instances leaves it out.
   */
  fence?: (request: FenceRequest, timeoutMs: number) => Promise<number | null>
  /**
   * Issue 12: carry an encoded must-deliver frame to the instance that took
   * a session over (`instanceId`, the asker of its fence), in order, for its
   * `AdapterHost.deliverToSession`. Rejects when the broker cannot be reached.
   */
  forward?: (instanceId: string, sessionId: string, text: string) => Promise<void>
  /** Counts for the stats snapshot. */
  counts: () => { users: number, rooms: number }
  /** Release what the adapter holds (subscriptions, clients). */
  close: () => Promise<void>
}
