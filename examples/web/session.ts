/**
 * Demo sign-in: a name becomes a short-lived JWT from `POST /demo/token`
 * (examples/demo-web.ts), kept in sessionStorage so a reload stays signed in.
 */

const STORAGE_KEY = 'wsr-demo-token'

/** The server refused the token (expired, badly signed): sign in again. */
export class SessionRefused extends Error {
  constructor (readonly reason: string) {
    super(`session refused: ${reason}`)
    this.name = 'SessionRefused'
  }
}

export function storedToken (): string | null {
  return sessionStorage.getItem(STORAGE_KEY)
}

export function forgetToken (): void {
  sessionStorage.removeItem(STORAGE_KEY)
}

export async function signIn (name: string): Promise<string> {
  const response = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name })
  })
  const body = await response.json() as { token?: string, message?: string }
  if (!response.ok || body.token === undefined) throw new Error(body.message ?? `sign-in failed (HTTP ${response.status})`)
  sessionStorage.setItem(STORAGE_KEY, body.token)
  return body.token
}

/**
 * Check the token with the server before a connection attempt. A browser
 * cannot read the status of a refused WebSocket upgrade (it reports 1006, as
 * for a server that is down), so without this an expired token would look
 * like an outage and be retried for ever. Rejects with `SessionRefused` on a
 * 401, and with the fetch's own error when the server is unreachable.
 */
export async function checkedToken (token: string): Promise<string> {
  const response = await fetch('/demo/session', { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  if (response.status === 401) {
    const body = await response.json() as { reason?: string }
    throw new SessionRefused(body.reason ?? 'HTTP 401')
  }
  if (!response.ok) throw new Error(`session check failed (HTTP ${response.status})`)
  return token
}
