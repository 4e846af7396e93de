import { createHash, randomBytes } from 'node:crypto'

/**
 * Resume tokens: `<sessionId>.<secret>`. The session id is the connection
 * id the client was given; the secret (24 random bytes, base64url) is what
 * proves the client held the session. Only the secret's SHA-256 is stored,
 * and the store compares it in constant time. The token is a credential:
 * it is redacted from logged URLs (`?resume=`) and never logged.
 */

export interface IssuedToken {
  readonly token: string
  readonly secretHash: string
}

export interface PresentedToken {
  readonly sessionId: string
  readonly secretHash: string
}

const TOKEN = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.([A-Za-z0-9_-]{32})$/

export function issueToken (sessionId: string): IssuedToken {
  const secret = randomBytes(24).toString('base64url')
  return { token: `${sessionId}.${secret}`, secretHash: hashSecret(secret) }
}

/** The session and secret hash a token names, or null when it is malformed (answered `unknown`). */
export function readToken (token: unknown): PresentedToken | null {
  if (typeof token !== 'string' || token.length > 80) return null
  const match = TOKEN.exec(token)
  if (match === null) return null
  return { sessionId: match[1] as string, secretHash: hashSecret(match[2] as string) }
}

function hashSecret (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}
