import type { WsRouter } from '../../lib/router.js'
import type { Engine } from '../../lib/engine.js'
import type { AgentRuns } from '../../lib/handlers/agent.js'
import type { TypingTracker } from '../../lib/handlers/typing.js'
import { kEngine } from '../../lib/symbols.js'

/** Router internals, reached through the engine symbol (never public members or hooks in lib/). */

/** The engine behind a router's facade: its connections, counters, sweeper, admissions. */
export function engineOf (router: WsRouter): Engine {
  return router[kEngine]
}

export function typingTrackerOf (router: WsRouter): TypingTracker | undefined {
  return router[kEngine].builtins.state.get('typing') as TypingTracker | undefined
}

export function agentRunsOf (router: WsRouter): AgentRuns | undefined {
  return router[kEngine].builtins.state.get('agent') as AgentRuns | undefined
}

/** One heartbeat pass at a chosen time (an injected clock). */
export function heartbeatTick (router: WsRouter, now: number): void {
  router[kEngine].heartbeatTick(now)
}
