/**
 * Liveness and readiness as answers a load balancer or an orchestrator can
 * act on, each with the reasons in its body. Pure: the plugin reads the
 * router's state and serves the answer.
 */

export interface HealthAnswer {
  readonly statusCode: 200 | 503
  readonly body: { status: 'ok' | 'unavailable', reasons: string[], connections: number }
}

export interface ReadinessState {
  readonly closing: boolean
  readonly connections: number
  /** The adapter's broker state (`status()`), null for the in-memory adapter. */
  readonly broker: Record<string, unknown> | null
}

/** Alive while the process answers HTTP: restarting it would not help anything the router knows of. */
export function liveness (connections: number): HealthAnswer {
  return { statusCode: 200, body: { status: 'ok', reasons: [], connections } }
}

/**
 * Not ready once shutdown has begun (new upgrades are refused with 503), or
 * when the adapter requires its broker (`requireBroker`) and it is down.
 */
export function readiness (state: ReadinessState): HealthAnswer {
  const reasons: string[] = []
  if (state.closing) reasons.push('shutting down: new upgrades are refused')
  const broker = state.broker
  if (broker !== null && broker.requireBroker === true && broker.connected !== true) {
    reasons.push('broker down and requireBroker is set')
  }
  return reasons.length === 0
    ? { statusCode: 200, body: { status: 'ok', reasons, connections: state.connections } }
    : { statusCode: 503, body: { status: 'unavailable', reasons, connections: state.connections } }
}
