import type { SendFailure, WireErrorCode } from './errors.js'
import type { ResumeStatsSnapshot } from './delivery/counters.js'

/**
 * Router counters. Every update on the per-frame path is a plain increment
 * on a field or on an object created at registration: O(1), no allocation.
 * Per-type counters exist only for registered types, so a client cannot grow
 * this structure by inventing types.
 */

const MAX_CLIENT_ERROR_CODES = 100

export interface TypeCounters {
  received: number
  handled: number
  failed: number
}

export interface StatsSnapshot {
  connections: { open: number, total: number, byState: Record<string, number>, closedByCode: Record<string, number> }
  /** Users with a connection and rooms with a member, as the adapter sees them. */
  users: number
  rooms: number
  frames: { received: number, unhandled: number }
  types: Record<string, TypeCounters>
  invalid: Record<string, number>
  handlerErrors: number
  handlerTimeouts: number
  sends: { ok: number, failed: Record<string, number> }
  heartbeat: { terminated: number }
  protocolErrors: Record<string, number>
  /** Frames refused by the inbound token bucket. */
  rateLimited: number
  /** Frames refused because too many handlers ran (`OVERLOADED`). */
  overloaded: number
  /** Droppable frames dropped for slow clients, by frame type. */
  dropped: Record<string, number>
  /** Connections closed with 1013 for not reading (backpressure). */
  backpressureCloses: number
  /** Connections closed with 1008 for sustained flooding. */
  abuseCloses: number
  /** Connections closed for idleness. */
  idleCloses: number
  /** Upgrades refused before the 101, by reason. */
  refused: Record<string, number>
  /** Counters of the built-in handlers (`agent.started`, `typing.broadcast`, ...). */
  builtins: Record<string, number>
  /** `client_error` reports by client code (at most 100 codes; the rest under `other`). */
  clientErrors: Record<string, number>
  /** The adapter's broker state (null for the in-memory adapter). */
  broker: Record<string, unknown> | null
  /** Resumable delivery (issue 12), with the `resume` option on only. */
  resume?: ResumeStatsSnapshot
}

export class RouterStats {
  connectionsOpen = 0
  connectionsTotal = 0
  framesReceived = 0
  unhandled = 0
  handlerErrors = 0
  handlerTimeouts = 0
  sendsOk = 0
  rateLimited = 0
  overloaded = 0
  backpressureCloses = 0
  abuseCloses = 0
  idleCloses = 0
  readonly dropped = new Map<string, number>()
  readonly refused = new Map<string, number>()
  readonly builtins = new Map<string, number>()
  readonly clientErrors = new Map<string, number>()
  heartbeatTerminations = 0
  readonly closedByCode = new Map<number, number>()
  readonly invalid = new Map<WireErrorCode | string, number>()
  readonly sendsFailed = new Map<SendFailure, number>()
  readonly types = new Map<string, TypeCounters>()
  /** Errors ws raised while reading frames (bad framing, too big, bad UTF-8), by ws error code. */
  readonly protocolErrors = new Map<string, number>()

  /** Counters for a registered message type; created once, at registration. */
  countersFor (type: string): TypeCounters {
    let counters = this.types.get(type)
    if (counters === undefined) {
      counters = { received: 0, handled: 0, failed: 0 }
      this.types.set(type, counters)
    }
    return counters
  }

  countInvalid (code: WireErrorCode | string): void {
    this.invalid.set(code, (this.invalid.get(code) ?? 0) + 1)
  }

  countSendFailure (reason: SendFailure): void {
    this.sendsFailed.set(reason, (this.sendsFailed.get(reason) ?? 0) + 1)
  }

  countProtocolError (code: string): void {
    this.protocolErrors.set(code, (this.protocolErrors.get(code) ?? 0) + 1)
  }

  countDropped (type: string): void {
    this.dropped.set(type, (this.dropped.get(type) ?? 0) + 1)
  }

  countBuiltin (key: string, by = 1): void {
    this.builtins.set(key, (this.builtins.get(key) ?? 0) + by)
  }

  /** Client-chosen codes: bounded, so a client cannot grow the map. */
  countClientError (code: string): void {
    const key = this.clientErrors.has(code) || this.clientErrors.size < MAX_CLIENT_ERROR_CODES ? code : 'other'
    this.clientErrors.set(key, (this.clientErrors.get(key) ?? 0) + 1)
  }

  countRefusal (reason: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1)
  }

  countClose (code: number): void {
    this.closedByCode.set(code, (this.closedByCode.get(code) ?? 0) + 1)
  }

  /** A copy that the caller may keep or serialise. */
  snapshot (byState: Record<string, number>, counts: { users: number, rooms: number }, broker: Record<string, unknown> | null): StatsSnapshot {
    const types: Record<string, TypeCounters> = {}
    for (const [type, counters] of this.types) types[type] = { ...counters }
    return {
      connections: {
        open: this.connectionsOpen,
        total: this.connectionsTotal,
        byState,
        closedByCode: Object.fromEntries(this.closedByCode)
      },
      users: counts.users,
      rooms: counts.rooms,
      frames: { received: this.framesReceived, unhandled: this.unhandled },
      types,
      invalid: Object.fromEntries(this.invalid),
      handlerErrors: this.handlerErrors,
      handlerTimeouts: this.handlerTimeouts,
      sends: { ok: this.sendsOk, failed: Object.fromEntries(this.sendsFailed) },
      heartbeat: { terminated: this.heartbeatTerminations },
      protocolErrors: Object.fromEntries(this.protocolErrors),
      rateLimited: this.rateLimited,
      overloaded: this.overloaded,
      dropped: Object.fromEntries(this.dropped),
      backpressureCloses: this.backpressureCloses,
      abuseCloses: this.abuseCloses,
      idleCloses: this.idleCloses,
      refused: Object.fromEntries(this.refused),
      builtins: Object.fromEntries(this.builtins),
      clientErrors: Object.fromEntries(this.clientErrors),
      broker
    }
  }
}
