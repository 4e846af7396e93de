// The plugin registers @fastify/websocket, so its declarations (`websocket: true`
// routes, `app.injectWS`, `app.websocketServer`) hold for every consumer too.
/// <reference types="@fastify/websocket" preserve="true" />
/**
 * fastify-ws-router public entry: the plugin, its types and its errors.
 * Redis support is the separate entry point fastify-ws-router/redis (lib/redis.ts).
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
export { selectProtocol, extractToken, RefusalReason } from './admission.js'
export { MemoryAdapter } from './adapters/memory.js'
export type { RouterAdapter, FanoutTarget, RoomMember, RemoteOutcome, FailedTarget, AdapterHost, LocalDelivery, PublishMeta, FenceRequest } from './adapter.js'
export type { FanoutResult, FanoutOptions } from './router.js'
export { MemoryResumeStore, type MemoryResumeStoreOptions } from './delivery/memory-store.js'
export type { ResumeStore, ResumeStoreLimits, ResumeStoreCounts, ResumeEvent, ResumeSession, ClaimResult, ClaimRefusal, PeekedSession } from './delivery/store.js'
export type { ResumeStatsSnapshot, ResumeFailReason } from './delivery/counters.js'
export type { ResumeOption, ResumeConfig } from './options.js'
export { JsonRpcError, JsonRpcCode, type JsonRpcCallContext, type MethodHandler, type MethodOptions, type JsonRpcId } from './jsonrpc.js'
export type { AgentRunner, AgentStep, AgentRunContext, UserMessage } from './agent-types.js'
export type { RouteProtocol, BuiltinSwitches, OnUserMessage, AuthorizeJoin, RateLimitOption, MetricsOption, HealthOption, HealthConfig, TracingOption } from './options.js'
export type { MetricsRegistry, MetricsConfig } from './metrics.js'
export type { TracerProviderLike, TracingConfig } from './tracing.js'
export { defineContract, routeOptions, type Contract, type MessageSpec, type MessagePayload, type MessageReply, type EventPayload, type ContractRouteOptions } from './contracts.js'
export { builtinContract, type BuiltinContract } from './builtin-contract.js'
export { asyncApiDocument, type AsyncApiOptions, type RouteSource } from './asyncapi.js'
