/**
 * Symbols for router internals that tests reach, never part of the public
 * API (not exported from lib/index.ts): the built-ins' state, and one
 * heartbeat pass with a chosen clock.
 */

/** `router[kBuiltinState]`: each stateful built-in's state, by name (`typing`, `agent`). */
export const kBuiltinState = Symbol('fastify-ws-router.builtin-state')

/** `router[kHeartbeatTick](now)`: one heartbeat pass, as the timer runs it, at time `now`. */
export const kHeartbeatTick = Symbol('fastify-ws-router.heartbeat-tick')
