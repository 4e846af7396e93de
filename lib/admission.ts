import type { FastifyRequest } from 'fastify'
import { FST_WSR_INVALID_OPTION } from './errors.js'

/**
 * Admission before the upgrade: origin check, bearer token lookup and the
 * connection limits. Everything here runs once per upgrade request, never
 * per frame; every refusal is an HTTP answer, so a refused client never
 * holds a half-open WebSocket.
 */

/** Why an upgrade was refused; the `code` of the HTTP error body and a stats key. */
export const RefusalReason = Object.freeze({
  AUTH_REQUIRED: 'AUTH_REQUIRED',
  AUTH_FAILED: 'AUTH_FAILED',
  AUTH_ERROR: 'AUTH_ERROR',
  AUTH_TIMEOUT: 'AUTH_TIMEOUT',
  ORIGIN_FORBIDDEN: 'ORIGIN_FORBIDDEN',
  ORIGIN_REQUIRED: 'ORIGIN_REQUIRED',
  SERVER_FULL: 'SERVER_FULL',
  USER_CONNECTION_LIMIT: 'USER_CONNECTION_LIMIT',
  SHUTTING_DOWN: 'SHUTTING_DOWN'
} as const)

// eslint-disable-next-line @typescript-eslint/no-redeclare -- a const and its value type share the name
export type RefusalReason = typeof RefusalReason[keyof typeof RefusalReason]

export interface Refusal {
  readonly statusCode: number
  readonly reason: RefusalReason
  readonly message: string
}

export function refusal (statusCode: number, reason: RefusalReason, message: string): Refusal {
  return { statusCode, reason, message }
}

/** `true` when an Origin header value is allowed. */
export type OriginCheck = (origin: string) => boolean

interface OriginPattern {
  readonly protocol: string
  readonly port: string
  /** Exact host, or the suffix after `*.` for a wildcard. */
  readonly host: string
  readonly wildcard: boolean
}

/**
 * Compile `allowedOrigins` once. Entries are origins (`https://app.example.com`,
 * `http://localhost:3000`) or wildcard subdomains (`https://*.example.com`,
 * which does not match `https://example.com` itself). Matching compares the
 * parsed scheme, host and port: `https://app.example.com.evil.com` and
 * `null` never match.
 */
export function compileOrigins (allowed: readonly string[]): OriginCheck {
  const exact = new Set<string>()
  const patterns: OriginPattern[] = []
  for (const entry of allowed) {
    const wildcard = /^([a-z][a-z0-9+.-]*:\/\/)\*\.(.+)$/i.exec(entry)
    const url = parseOrigin(wildcard === null ? entry : `${wildcard[1]}${wildcard[2]}`)
    if (url === null) throw new FST_WSR_INVALID_OPTION('allowedOrigins', `"${entry}" is not an origin like https://app.example.com`)
    if (wildcard === null) exact.add(url.origin)
    else patterns.push({ protocol: url.protocol, port: url.port, host: url.hostname, wildcard: true })
  }
  return (origin: string): boolean => {
    const url = parseOrigin(origin)
    if (url === null) return false
    if (exact.has(url.origin)) return true
    for (const pattern of patterns) {
      if (url.protocol === pattern.protocol && url.port === pattern.port && url.hostname.endsWith(`.${pattern.host}`)) return true
    }
    return false
  }
}

function parseOrigin (value: string): URL | null {
  if (value === 'null') return null
  try {
    const url = new URL(value)
    // An origin has no path, query, fragment or credentials.
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') return null
    if (url.origin === 'null') return null
    return url
  } catch {
    return null
  }
}

/** The subprotocol a browser offers before its token: `new WebSocket(url, ['bearer', token])`. */
export const BEARER_PROTOCOL = 'bearer'

/**
 * The client's bearer token: `Authorization: Bearer <token>`, else the
 * `token` query parameter, else the value after `bearer` in
 * `Sec-WebSocket-Protocol`.
 */
export function extractToken (request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
    if (match !== null) return match[1]
  }
  const query = request.query as Record<string, unknown> | undefined
  const fromQuery = query?.token
  if (typeof fromQuery === 'string' && fromQuery !== '') return fromQuery
  const protocols = request.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    const list = protocols.split(',').map((item) => item.trim())
    const index = list.indexOf(BEARER_PROTOCOL)
    const token = index === -1 ? undefined : list[index + 1]
    if (token !== undefined && token !== '') return token
  }
  return undefined
}

/**
 * The subprotocol the server answers: `bearer` when the client offered it,
 * so that browsers accept the handshake; never the token itself.
 * Pass it as ws's `handleProtocols` when registering @fastify/websocket yourself.
 */
export function selectProtocol (protocols: Set<string>): string | false {
  if (protocols.has(BEARER_PROTOCOL)) return BEARER_PROTOCOL
  const first = protocols.values().next()
  return first.done === true ? false : first.value
}

/**
 * Counts of admitted clients, including those between admission and the
 * end of the upgrade, so that concurrent upgrades cannot overshoot a limit.
 */
export class AdmissionCounter {
  private total = 0
  private readonly perUser = new Map<string, number>()

  get size (): number {
    return this.total
  }

  countFor (userId: string): number {
    return this.perUser.get(userId) ?? 0
  }

  add (userId: string): void {
    this.total++
    this.perUser.set(userId, (this.perUser.get(userId) ?? 0) + 1)
  }

  remove (userId: string): void {
    const count = this.perUser.get(userId)
    if (count === undefined) return
    this.total--
    if (count <= 1) this.perUser.delete(userId)
    else this.perUser.set(userId, count - 1)
  }

  get users (): number {
    return this.perUser.size
  }
}
