import type { FastifyRequest } from 'fastify'

/** Who a connection is: the admission's answer, shared by the options, the connection and the handler context. */

/** What `authenticate` resolves to for an admitted client. */
export interface Identity {
  userId: string
  /**
   * When the credentials expire, in ms since the epoch (a JWT's `exp * 1000`).
   * The connection is closed with 1008 `TOKEN_EXPIRED` at the first heartbeat
   * past it; an identity already expired is refused with 401.
   */
  expiresAt?: number
  [claim: string]: unknown
}

/**
 * Identify a client before the upgrade. `token` is the bearer token found in
 * the `Authorization` header, the `token` query parameter or the
 * `Sec-WebSocket-Protocol` list (`bearer, <token>`). Return `null` to refuse
 * with 401; throw an error with a 4xx `statusCode` to refuse with that code.
 * Return `expiresAt` to end the connection when the credentials expire.
 */
export type Authenticate = (request: FastifyRequest, token: string | undefined) => Identity | null | undefined | Promise<Identity | null | undefined>
