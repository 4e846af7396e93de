import type { WsRouter } from '../../lib/router.js'
import type { AgentRuns } from '../../lib/handlers/agent.js'
import type { TypingTracker } from '../../lib/handlers/typing.js'
import { kBuiltinState, kHeartbeatTick } from '../../lib/symbols.js'

/** Router internals, reached through symbols (never public members or hooks in lib/). */

export function typingTrackerOf (router: WsRouter): TypingTracker | undefined {
  return router[kBuiltinState].get('typing') as TypingTracker | undefined
}

export function agentRunsOf (router: WsRouter): AgentRuns | undefined {
  return router[kBuiltinState].get('agent') as AgentRuns | undefined
}

/** One heartbeat pass at a chosen time (an injected clock). */
export function heartbeatTick (router: WsRouter, now: number): void {
  router[kHeartbeatTick](now)
}
