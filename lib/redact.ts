import type { FastifyBaseLogger, FastifyRequest } from 'fastify'

/**
 * Bearer tokens never reach a log line. The `token` query parameter is found
 * the way Fastify's query parser finds it (the name percent-decoded, so
 * `?%74oken=` is caught), and the app's request serializer is wrapped once so
 * that every route of the app, 404s included, logs the redacted URL.
 */

const REDACTED = '[REDACTED]'

/** Query parameter names whose value is a credential. */
// `resume`: the resume token of issue 12, a credential too.
const secretParameters = new Set(['token', 'resume'])

function decodeName (raw: string): string {
  const name = raw.replace(/\+/g, ' ')
  try {
    return decodeURIComponent(name)
  } catch {
    return name
  }
}

function isSecretParameter (raw: string): boolean {
  return secretParameters.has(decodeName(raw).trim().toLowerCase())
}

/** The URL with the value of every `token` query parameter replaced, however its name is written. */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const hash = url.indexOf('#', start)
  const end = hash === -1 ? url.length : hash
  let changed = false
  const parts = url.slice(start + 1, end).split('&').map((part) => {
    const equals = part.indexOf('=')
    const name = equals === -1 ? part : part.slice(0, equals)
    if (equals === -1 || !isSecretParameter(name)) return part
    changed = true
    return `${name}=${REDACTED}`
  })
  return changed ? `${url.slice(0, start + 1)}${parts.join('&')}${url.slice(end)}` : url
}

type Serializer = (value: unknown) => unknown

const kRedacting = Symbol('fastify-ws-router.redacting-serializer')

/** pino keeps serializers under a Symbol it does not share across copies: found by its description. */
function serializersOf (logger: object): Record<string, Serializer> | undefined {
  for (let target: object | null = logger; target !== null && target !== Object.prototype; target = Object.getPrototypeOf(target) as object | null) {
    for (const symbol of Object.getOwnPropertySymbols(target)) {
      if (symbol.description === 'pino.serializers') {
        const found = (target as Record<symbol, unknown>)[symbol]
        return found !== null && typeof found === 'object' ? found as Record<string, Serializer> : undefined
      }
    }
  }
  return undefined
}

function redactSerialized (serialized: unknown): unknown {
  if (serialized !== null && typeof serialized === 'object' && typeof (serialized as { url?: unknown }).url === 'string') {
    const url = (serialized as { url: string }).url
    const redacted = redactUrl(url)
    if (redacted !== url) return { ...serialized, url: redacted }
  }
  return serialized
}

/**
 * Wrap the `req` serializer of the app's pino logger (Fastify's own, or the
 * app's) so that its `url` is redacted: Fastify logs `incoming request` for
 * every route and for 404s with that serializer, before any hook runs.
 * Returns false for a logger that is not pino (`loggerInstance` of another
 * kind): such an app redacts with `redactUrl` in its own serializer.
 */
export function redactRequestLogs (logger: FastifyBaseLogger): boolean {
  const serializers = serializersOf(logger)
  if (serializers === undefined) return false
  const current = serializers.req
  if (current !== undefined && (current as { [kRedacting]?: boolean })[kRedacting] === true) return true
  const redacting = current === undefined
    ? redactSerialized
    : (value: unknown): unknown => redactSerialized(current(value))
  Object.defineProperty(redacting, kRedacting, { value: true })
  serializers.req = redacting
  return true
}

/**
 * An `onRequest` hook for the app's root context: Fastify's default 404
 * handler logs `Route GET:<url> not found` and echoes the URL in its body,
 * both from the raw URL. Routing is over by then, so a 404's raw URL is
 * redacted in place; matched routes are left untouched.
 */
export function redactNotFoundUrl (request: FastifyRequest, _reply: unknown, done: () => void): void {
  if (request.is404) {
    const url = request.raw.url
    if (url !== undefined) request.raw.url = redactUrl(url)
  }
  done()
}
