import type { FailedTarget, FanoutTarget, LocalDelivery, RemoteOutcome } from './adapter.js'
import type { RouterCore } from './core.js'
import { encodeFrame } from './envelope.js'
import { SendFailure } from './errors.js'
import { countFailedSend } from './outbound.js'
import { failure, writeNow, type SendOptions } from './send.js'

/**
 * Fan-out: encode once, hand the frame to every local target without
 * waiting on one before the next (a slow client never stalls the others),
 * give it to the adapter for other instances, and report every target.
 */

export interface FanoutOptions extends SendOptions {
  /** Leave this connection out (the sender's own, say). */
  readonly except?: string | undefined
}

/** The outcome of a fan-out: every target accounted for. */
export interface FanoutResult {
  /** Every target got the frame (and at least one target existed). */
  ok: boolean
  /** `NO_TARGET`: nobody, on any instance, matched; `SERIALIZE`: the payload could not be encoded. */
  reason?: 'NO_TARGET' | typeof SendFailure.SERIALIZE
  /** Local connections the frame was handed to (or tried). */
  targets: number
  /** Local targets that accepted the frame: `written + buffered`. */
  delivered: number
  /** Local targets that did not take it, with the reason (`DROPPED` ones included). */
  failed: FailedTarget[]
  /** Local targets whose socket took the whole frame at once. */
  written: number
  /** Local targets that accepted it into their send buffer, behind earlier frames. */
  buffered: number
  /** Local targets that skipped a droppable frame, being over the high-water mark (also in `failed`). */
  dropped: number
  /** Other instances (null with the in-memory adapter). */
  remote: RemoteOutcome | null
}

export function fanout (core: RouterCore, target: FanoutTarget, type: string, payload: unknown, options: FanoutOptions | undefined): Promise<FanoutResult> {
  const tracing = core.tracing
  if (tracing === null || !tracing.enabled()) return fanoutNow(core, target, type, payload, options)
  return tracing.fanout(type, target.kind, () => fanoutNow(core, target, type, payload, options))
}

async function fanoutNow (core: RouterCore, target: FanoutTarget, type: string, payload: unknown, options: FanoutOptions | undefined): Promise<FanoutResult> {
  const ids = core.adapter.localTargets(target)
  if (ids.length === 0 && core.adapter.singleInstance === true) {
    // Nobody to encode for (a room of one, say): no frame is built.
    core.observer?.fanout(0)
    return { ok: false, reason: 'NO_TARGET', targets: 0, delivered: 0, failed: [], written: 0, buffered: 0, dropped: 0, remote: null }
  }
  const encoded = encodeFrame(type, undefined, payload)
  if (!encoded.ok) {
    core.stats.countSendFailure(SendFailure.SERIALIZE)
    core.log.error({ messageType: type, target, err: encoded.error, environment: core.config.environment }, 'websocket fan-out could not serialise its frame')
    return { ok: false, reason: SendFailure.SERIALIZE, targets: 0, delivered: 0, failed: [], written: 0, buffered: 0, dropped: 0, remote: null }
  }
  const droppable = options?.droppable === true
  // Resume (issue 12, resume-redis): one message id per fan-out, here and on other instances (a session resumed elsewhere skips what it replayed).
  const mid = core.delivery === null || droppable ? undefined : core.delivery.nextMid()
  const local = handOver(core, target, type, encoded.text, droppable, mid, ids)
  const remote = core.adapter.publish(target, encoded.text, mid === undefined ? { type, droppable } : { type, droppable, mid })
    .catch((err: unknown): RemoteOutcome => ({ instances: 0, error: (err as Error).message ?? 'PUBLISH_FAILED' }))
  const { targets, failed } = local
  const remoteOutcome = await remote
  const delivered = targets - failed.length
  const remoteError = remoteOutcome?.error
  const noTarget = targets === 0 && remoteError === undefined && (remoteOutcome === null || remoteOutcome.instances === 0)
  const remoteFailed = (remoteOutcome?.failed?.length ?? 0) + (remoteOutcome?.timedOut ?? 0)
  const result: FanoutResult = {
    ok: !noTarget && failed.length === 0 && remoteError === undefined && remoteFailed === 0,
    targets,
    delivered,
    failed,
    written: local.written ?? 0,
    buffered: local.buffered ?? 0,
    dropped: local.dropped ?? 0,
    remote: remoteOutcome
  }
  if (noTarget) result.reason = 'NO_TARGET'
  const reported = failed.filter((f) => f.reason !== SendFailure.DROPPED)
  if (reported.length > 0 || remoteError !== undefined || remoteFailed > 0) {
    core.log[core.config.sendFailureLogLevel]({
      messageType: type,
      target,
      targets,
      delivered,
      failed: reported.length > 20 ? reported.slice(0, 20) : reported,
      failedCount: reported.length,
      remote: remoteOutcome,
      environment: core.config.environment
    }, 'websocket fan-out had failures')
  }
  return result
}

/**
 * Hand an encoded frame to this instance's connections that a target names,
 * without waiting on any of them; each failure is counted (the caller logs
 * the fan-out once). The outcome is each target's state at hand-over:
 * written, buffered, dropped or failed. Also the `AdapterHost.deliverLocal`
 * of frames from other instances.
 */
export function handOver (core: RouterCore, target: FanoutTarget, type: string, text: string, droppable: boolean, mid?: string, ids: readonly string[] = core.adapter.localTargets(target)): Required<LocalDelivery> {
  const failed: FailedTarget[] = []
  let written = 0
  let buffered = 0
  let dropped = 0
  for (let i = 0; i < ids.length; i++) {
    const connectionId = ids[i] as string
    const conn = core.connections.get(connectionId)
    // Resume (issue 12): a target with a session is numbered and stored, parked or not (resume-redis: or held while claimed from another instance).
    const routed = core.delivery?.route(connectionId, text, droppable, mid)
    const outcome = routed !== undefined
      ? routed
      : conn === undefined ? SendFailure.NOT_OPEN : writeNow(conn, text, core.config, droppable)
    if (outcome === 'WRITTEN') {
      written++
      continue
    }
    if (outcome === 'BUFFERED') {
      buffered++
      continue
    }
    if (outcome === SendFailure.DROPPED) dropped++
    failed.push({ connectionId, reason: outcome })
    if (conn === undefined) core.stats.countSendFailure(outcome)
    else countFailedSend(core, conn, type, failure(outcome))
  }
  core.stats.sendsOk += written + buffered
  core.observer?.fanout(ids.length)
  return { targets: ids.length, failed, written, buffered, dropped }
}
