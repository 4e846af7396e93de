import { WireErrorCode, WsRouterError } from '../errors.js'
import type { BuiltinHost } from '../builtin-host.js'
import { RoomPayload } from './membership.js'

export { RoomPayload }

/** Told when a connection leaves a room (the typing built-in stops its indicator there). */
export type OnLeave = (connectionId: string, userId: string, room: string) => void

/**
 * `join` `{ room }` → `joined` `{ room }`; `leave` `{ room }` → `left` `{ room }`.
 * `authorizeJoin` may refuse with `FORBIDDEN`; a connection in
 * `maxRoomsPerConnection` rooms gets `ROOM_LIMIT`. Joining twice is not an
 * error (`joined` again); all rooms are left when the connection closes.
 */
export function registerRooms (router: BuiltinHost, onLeave?: OnLeave): void {
  const { authorizeJoin, maxRoomsPerConnection } = router.config
  router.on('join', { schema: RoomPayload, replyType: 'joined' }, async (payload, ctx) => {
    const room = payload.room
    if (authorizeJoin !== undefined && await authorizeJoin(ctx, room) !== true) {
      throw new WsRouterError(WireErrorCode.FORBIDDEN, `Not allowed to join room "${room}"`)
    }
    if (!router.isMember(ctx.connectionId, room) && router.roomCount(ctx.connectionId) >= maxRoomsPerConnection) {
      throw new WsRouterError(WireErrorCode.ROOM_LIMIT, `A connection may be in at most ${maxRoomsPerConnection} rooms`)
    }
    router.join(ctx.connectionId, room)
    return { room }
  })
  router.on('leave', { schema: RoomPayload, replyType: 'left' }, (payload, ctx) => {
    router.leave(ctx.connectionId, payload.room)
    // Whoever leaves stops typing there (the indicator would otherwise last until it expires).
    onLeave?.(ctx.connectionId, ctx.userId, payload.room)
    return { room: payload.room }
  })
}
