/**
 * Symbols for router internals, never part of the public API (not exported
 * from lib/index.ts): the plugin wiring and the tests reach the engine
 * behind the facade through it (test/helpers/internals.ts).
 */

/** `router[kEngine]`: the engine behind a `WsRouter` facade (lib/engine.ts). */
export const kEngine = Symbol('fastify-ws-router.engine')

/**
 * `request[kRequestConnection]`: the connection adopted for a WebSocket
 * request, set where every socket is adopted (lib/socket-events.ts `adopt`,
 * for a new connection and after a resume alike), read by
 * `request.checkConnection()` (plugins/router.ts).
 */
export const kRequestConnection = Symbol('fastify-ws-router.request-connection')
