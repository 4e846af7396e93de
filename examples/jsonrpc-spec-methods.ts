import { Type } from '@sinclair/typebox'
import type { WsRouter } from '../lib/index.js'

/**
 * The methods used by the examples in section 7 of the JSON-RPC 2.0
 * specification (https://www.jsonrpc.org/specification#examples), so that
 * every example there can be replayed verbatim against `/rpc`.
 */
export function registerSpecMethods (router: WsRouter): void {
  const Subtract = Type.Union([
    Type.Tuple([Type.Number(), Type.Number()]),
    Type.Object({ minuend: Type.Number(), subtrahend: Type.Number() })
  ])
  router.method('subtract', { params: Subtract }, (params) =>
    Array.isArray(params) ? params[0] - params[1] : params.minuend - params.subtrahend)
  router.method('sum', { params: Type.Array(Type.Number()) }, (params) => params.reduce((total, n) => total + n, 0))
  // Notifications in the examples: accepted, nothing to answer.
  router.method('update', { params: Type.Array(Type.Unknown()) }, () => undefined)
  router.method('notify_hello', { params: Type.Array(Type.Unknown()) }, () => undefined)
  router.method('get_data', () => ['hello', 5])
}
