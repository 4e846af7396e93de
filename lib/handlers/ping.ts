import type { WsRouter } from '../router.js'

/** `ping` → `pong` with the server's clock; the client measures round trips with it. */
export function registerPing (router: WsRouter): void {
  router.on('ping', { replyType: 'pong' }, () => ({ serverTime: Date.now() }))
}
