/**
 * The example's authentication: HS256 JWTs whose `sub` is the user id,
 * signed and verified with fast-jwt against the secret in `AUTH_SECRET`.
 * Shared by the server (examples/app.ts) and `npm run token`
 * (examples/token.ts), so that both read the environment the same way.
 */
import { createSigner, createVerifier } from 'fast-jwt'
import { resolveEnvironment } from '../lib/index.js'

/**
 * Used only outside production when `AUTH_SECRET` is not set, so that
 * `npm run token -- alice` and `npm start` work together on a fresh clone.
 * It is public (it is in this file): never a real secret.
 */
export const DEV_AUTH_SECRET = 'fastify-ws-router-example-development-secret-not-for-production'

/** HMAC keys shorter than this can be guessed offline from one captured token. */
export const MIN_SECRET_LENGTH = 32

/** Tokens printed by `npm run token` are valid for one hour. */
export const TOKEN_TTL_MS = 60 * 60 * 1000

function isSet (value: string | undefined): value is string {
  return value !== undefined && value.trim() !== ''
}

/**
 * Production is `NODE_ENV=production` or `ENVIRONMENT=production`, or
 * whatever the plugin itself resolves to production (`prod`, an unknown
 * value: the safe side). The example passes `environment: 'production'` to
 * the plugin in that case, so that the two never disagree.
 */
export function isProduction (env: NodeJS.ProcessEnv): boolean {
  return env.NODE_ENV?.trim().toLowerCase() === 'production' ||
    env.ENVIRONMENT?.trim().toLowerCase() === 'production' ||
    resolveEnvironment(undefined, env).name === 'production'
}

/**
 * The signing secret: `AUTH_SECRET`, else, outside production only, the
 * development secret. In production a missing or short secret is an error
 * whose message says what to set.
 */
export function resolveAuthSecret (env: NodeJS.ProcessEnv): string {
  const secret = env.AUTH_SECRET
  if (isSet(secret)) {
    if (isProduction(env) && secret.length < MIN_SECRET_LENGTH) {
      throw new Error(`AUTH_SECRET is too short for production: use at least ${MIN_SECRET_LENGTH} random characters (for example: openssl rand -base64 48)`)
    }
    return secret
  }
  if (isProduction(env)) {
    throw new Error('AUTH_SECRET is not set: in production the example server refuses to start without the secret that verifies its tokens (HS256 JWTs). Set AUTH_SECRET to at least 32 random characters.')
  }
  return DEV_AUTH_SECRET
}

/**
 * A signed token for `userId`, valid for `ttlMs`.
 *
 * @example
 * const token = signToken(resolveAuthSecret(process.env), 'alice')
 */
export function signToken (secret: string, userId: string, ttlMs: number = TOKEN_TTL_MS): string {
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: ttlMs })
  return sign({ sub: userId })
}

/** Why a token was refused: fast-jwt's error code (`FAST_JWT_EXPIRED`, …), never the token. */
export class InvalidTokenError extends Error {
  readonly statusCode = 401
  readonly reason: string

  constructor (reason: string) {
    super('Invalid token')
    this.name = 'InvalidTokenError'
    this.reason = reason
  }
}

const MAX_USER_ID_LENGTH = 256

/** What a valid token says: who, and until when (ms since the epoch, from `exp`). */
export interface VerifiedToken {
  userId: string
  expiresAt: number
}

/**
 * A verifier that returns the token's user id and expiry, or throws an
 * `InvalidTokenError` (statusCode 401) for a token that is malformed,
 * badly signed, signed with another algorithm, expired, not yet valid, or
 * without `sub` or `exp`.
 */
export function createTokenVerifier (secret: string): (token: string) => VerifiedToken {
  const verify = createVerifier({ key: secret, algorithms: ['HS256'], requiredClaims: ['sub', 'exp'] })
  return (token: string): VerifiedToken => {
    let claims: { sub?: unknown, exp?: unknown }
    try {
      claims = verify(token) as { sub?: unknown, exp?: unknown }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      throw new InvalidTokenError(typeof code === 'string' ? code : 'FAST_JWT_VERIFY_ERROR')
    }
    const sub = claims.sub
    if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_USER_ID_LENGTH) {
      throw new InvalidTokenError('INVALID_SUB')
    }
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw new InvalidTokenError('INVALID_EXP')
    return { userId: sub, expiresAt: claims.exp * 1000 }
  }
}
