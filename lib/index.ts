/**
 * fastify-ws-router public entry: the plugin, its types and its errors.
 */
export { wsRouter, wsRouter as default } from '../plugins/router.js'
export { WsRouter } from './router.js'
export { HandlerContext } from './context.js'
export type { ConnectionState, ConnectionStatus } from './connection.js'
export type { MessageHandler, RouteOptions, PayloadOf } from './registry.js'
export type { SendOptions, SendResult } from './send.js'
export type { StatsSnapshot, TypeCounters } from './stats.js'
export type { WsRouterOptions, RouterConfig, Identity, Authenticate, UnknownTypePolicy } from './options.js'
export type { EnvironmentName, EnvironmentPreset } from './environment.js'
export { presets as environmentPresets, resolveEnvironment } from './environment.js'
export { PROTOCOL_VERSION, type MessageId } from './envelope.js'
export * from './errors.js'
