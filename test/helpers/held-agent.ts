import type { AgentStep } from '../../lib/agent-types.js'

/**
 * An agent that thinks once, then waits until `release()` before it runs a
 * tool and completes: a run that is still going while its client is away.
 */
export function heldAgent (): { agent: () => AsyncGenerator<AgentStep, unknown, undefined>, release: () => void } {
  let release = (): void => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  async function * agent (): AsyncGenerator<AgentStep, unknown, undefined> {
    yield { type: 'thinking', reasoning: 'first' }
    await released
    yield { type: 'progress', step: 1 }
    yield { type: 'tool_start', toolName: 'search' }
    yield { type: 'tool_end', toolName: 'search', results: { hits: 3 } }
    return { text: 'done' }
  }
  return { agent, release }
}
