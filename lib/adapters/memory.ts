import type { FanoutTarget, RoomMember, RouterAdapter, PublishMeta, RemoteOutcome } from '../adapter.js'

/**
 * The in-memory adapter, the default: connections, users and rooms of one
 * instance, in Maps. It has no remote part (`publish` answers null); the
 * Redis adapter extends it with one.
 */
export class MemoryAdapter implements RouterAdapter {
  /**
   * One instance, unless a subclass publishes to others (`RedisAdapter`, or
   * an app's own adapter that overrides `publish`): then false.
   */
  get singleInstance (): boolean {
    return this.publish === MemoryAdapter.prototype.publish
  }

  protected readonly users = new Map<string, Set<string>>()
  protected readonly rooms = new Map<string, Set<string>>()
  protected readonly userOf = new Map<string, string>()
  protected readonly roomsOfConnection = new Map<string, Set<string>>()

  addConnection (connectionId: string, userId: string): void {
    this.userOf.set(connectionId, userId)
    addTo(this.users, userId, connectionId)
  }

  removeConnection (connectionId: string): void {
    const userId = this.userOf.get(connectionId)
    if (userId === undefined) return
    this.userOf.delete(connectionId)
    removeFrom(this.users, userId, connectionId)
    const rooms = this.roomsOfConnection.get(connectionId)
    if (rooms !== undefined) {
      this.roomsOfConnection.delete(connectionId)
      for (const room of rooms) removeFrom(this.rooms, room, connectionId)
    }
  }

  join (connectionId: string, room: string): boolean {
    if (!this.userOf.has(connectionId)) return false
    if (!addTo(this.roomsOfConnection, connectionId, room)) return false
    addTo(this.rooms, room, connectionId)
    return true
  }

  leave (connectionId: string, room: string): boolean {
    if (!removeFrom(this.roomsOfConnection, connectionId, room)) return false
    removeFrom(this.rooms, room, connectionId)
    return true
  }

  roomsOf (connectionId: string): readonly string[] {
    const rooms = this.roomsOfConnection.get(connectionId)
    return rooms === undefined ? [] : [...rooms]
  }

  isMember (connectionId: string, room: string): boolean {
    return this.roomsOfConnection.get(connectionId)?.has(room) === true
  }

  roomCount (connectionId: string): number {
    return this.roomsOfConnection.get(connectionId)?.size ?? 0
  }

  async members (room: string): Promise<RoomMember[]> {
    const ids = this.rooms.get(room)
    if (ids === undefined) return []
    const members: RoomMember[] = []
    for (const connectionId of ids) members.push({ connectionId, userId: this.userOf.get(connectionId) as string })
    return members
  }

  localTargets (target: FanoutTarget): string[] {
    let ids: Iterable<string> | undefined
    if (target.kind === 'user') ids = this.users.get(target.userId)
    else if (target.kind === 'room') ids = this.rooms.get(target.room)
    else ids = this.userOf.keys()
    if (ids === undefined) return []
    const result: string[] = []
    for (const id of ids) if (id !== target.except) result.push(id)
    return result
  }

  async publish (_target: FanoutTarget, _text: string, _meta: PublishMeta): Promise<RemoteOutcome | null> {
    return null
  }

  async presence (userId: string): Promise<{ online: boolean, connections: number }> {
    const connections = this.users.get(userId)?.size ?? 0
    return { online: connections > 0, connections }
  }

  async onlineUsers (): Promise<Array<{ userId: string, connections: number }>> {
    return [...this.users].map(([userId, ids]) => ({ userId, connections: ids.size }))
  }

  counts (): { users: number, rooms: number } {
    return { users: this.users.size, rooms: this.rooms.size }
  }

  async close (): Promise<void> {
    this.users.clear()
    this.rooms.clear()
    this.userOf.clear()
    this.roomsOfConnection.clear()
  }
}

function addTo (map: Map<string, Set<string>>, key: string, value: string): boolean {
  const set = map.get(key)
  if (set === undefined) {
    map.set(key, new Set([value]))
    return true
  }
  if (set.has(value)) return false
  set.add(value)
  return true
}

function removeFrom (map: Map<string, Set<string>>, key: string, value: string): boolean {
  const set = map.get(key)
  if (set === undefined || !set.delete(value)) return false
  if (set.size === 0) map.delete(key)
  return true
}
