import type { BuiltinHost } from '../builtin-host.js'

/** `ping` → `pong` with the server's clock; the client measures round trips with it. */
export function registerPing (router: BuiltinHost): void {
  router.on('ping', { replyType: 'pong' }, () => ({ serverTime: Date.now() }))
}
