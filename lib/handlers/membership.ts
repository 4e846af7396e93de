import { Type } from '@sinclair/typebox'
import { WireErrorCode, WsRouterError } from '../errors.js'
import type { BuiltinHost } from '../builtin-host.js'

/** `{ room }`: the payload of the room built-ins, shared by them here so none imports another. */
export const RoomPayload = Type.Object({ room: Type.String({ minLength: 1, maxLength: 128 }) })

/**
 * Only members speak in a room: typing, messages and room-bound agent runs
 * from a connection outside the room are refused with `FORBIDDEN`, so a
 * client cannot reach a room it was never allowed to join.
 */
export function requireMember (router: BuiltinHost, connectionId: string, room: string): void {
  if (!router.isMember(connectionId, room)) {
    throw new WsRouterError(WireErrorCode.FORBIDDEN, `Not a member of room "${room}": join it first`)
  }
}
