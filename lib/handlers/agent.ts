import { randomUUID } from 'node:crypto'
import { Type } from '@sinclair/typebox'
import type { FastifyBaseLogger } from 'fastify'
import type { AgentRunContext, AgentRunner, AgentStep } from '../agent-types.js'
import type { MessageId } from '../envelope.js'
import { SendFailure, WireErrorCode, WsRouterError, isWsRouterError } from '../errors.js'
import type { BuiltinHost } from '../builtin-host.js'

/** The connection a run answers on: its ids and logger, as a handler's context gives them. */
interface RunOwner {
  readonly connectionId: string
  readonly userId: string
  readonly log: FastifyBaseLogger
}
import type { SendResult } from '../send.js'
import { RoomPayload, requireMember } from './membership.js'

/**
 * Agent runs: `start_agent` starts a runner (an async generator) without
 * blocking the connection, streams its steps as frames, and ends each run
 * with exactly one `agent_completed`. `stop_agent`, the connection closing
 * and a send the connection can no longer take all abort the run.
 */

export type RunStatus = 'completed' | 'cancelled' | 'failed'

interface RunOutcome {
  readonly status: RunStatus
  readonly finalResponse?: unknown
  readonly error?: { readonly code: string, readonly message: string }
}

const COMPLETED_EMPTY: RunOutcome = Object.freeze({ status: 'completed' })
const CANCELLED: RunOutcome = Object.freeze({ status: 'cancelled' })
const GENERIC_AGENT_MESSAGE = 'The agent run failed'
const DROPPABLE = Object.freeze({ droppable: true })
/** Resume (issue 12): agent events carry the request's id, yet are must-deliver events of the session. */
const NUMBERED = Object.freeze({ numbered: true })
/** What a pending step resolves to when the run is aborted under it. */
const ABORTED = Symbol('aborted')

type Steps = AsyncGenerator<AgentStep, unknown, undefined>
type NextStep = IteratorResult<AgentStep, unknown> | typeof ABORTED

class AgentRun {
  readonly runId = randomUUID()
  readonly startedAt = Date.now()
  readonly context: AgentRunContext
  private readonly controller = new AbortController()
  /**
   * Settles the step being awaited when the run is aborted, so a runner that
   * ignores its signal cannot hold the run (or its connection's slot) open.
   */
  wake: ((aborted: typeof ABORTED) => void) | null = null
  /** Start times of the tools in progress, by name, for `durationMs`. */
  private toolStarts: Map<string, number[]> | null = null

  constructor (
    readonly owner: RunOwner,
    /** The `start_agent` frame's id: every event of the run carries it. */
    readonly requestId: MessageId | undefined,
    readonly room: string | undefined
  ) {
    this.context = Object.freeze({
      runId: this.runId,
      userId: owner.userId,
      connectionId: owner.connectionId,
      room,
      signal: this.controller.signal,
      log: owner.log.child({ runId: this.runId })
    })
  }

  get signal (): AbortSignal {
    return this.controller.signal
  }

  get log (): FastifyBaseLogger {
    return this.owner.log
  }

  abort (reason: unknown): void {
    if (!this.controller.signal.aborted) this.controller.abort(reason)
    const wake = this.wake
    if (wake !== null) {
      this.wake = null
      wake(ABORTED)
    }
  }

  toolStarted (toolName: string, now: number): void {
    if (this.toolStarts === null) this.toolStarts = new Map()
    const starts = this.toolStarts.get(toolName)
    if (starts === undefined) this.toolStarts.set(toolName, [now])
    else starts.push(now)
  }

  /** Milliseconds since the earliest open start of this tool; null without one. */
  toolEnded (toolName: string, now: number): number | null {
    const starts = this.toolStarts?.get(toolName)
    const startedAt = starts?.shift()
    if (starts !== undefined && starts.length === 0) this.toolStarts?.delete(toolName)
    return startedAt === undefined ? null : now - startedAt
  }
}

/** One router's runs, by connection then run id; emptied as runs end and connections close. */
export class AgentRuns {
  private readonly byConnection = new Map<string, Map<string, AgentRun>>()

  /** Runs in progress, over all connections. */
  get size (): number {
    let size = 0
    for (const runs of this.byConnection.values()) size += runs.size
    return size
  }

  /** Connections with a run in progress. */
  get connections (): number {
    return this.byConnection.size
  }

  countFor (connectionId: string): number {
    return this.byConnection.get(connectionId)?.size ?? 0
  }

  get (connectionId: string, runId: string): AgentRun | undefined {
    return this.byConnection.get(connectionId)?.get(runId)
  }

  add (run: AgentRun): void {
    const runs = this.byConnection.get(run.owner.connectionId)
    if (runs === undefined) this.byConnection.set(run.owner.connectionId, new Map([[run.runId, run]]))
    else runs.set(run.runId, run)
  }

  delete (run: AgentRun): void {
    const runs = this.byConnection.get(run.owner.connectionId)
    if (runs !== undefined && runs.delete(run.runId) && runs.size === 0) this.byConnection.delete(run.owner.connectionId)
  }

  /** The connection closed: abort its runs and forget them at once. */
  connectionClosed (connectionId: string): void {
    const runs = this.byConnection.get(connectionId)
    if (runs === undefined) return
    this.byConnection.delete(connectionId)
    const reason = new DOMException('connection closed', 'AbortError')
    for (const run of runs.values()) run.abort(reason)
  }
}

export function startAgentSchema (maxMessageChars: number) {
  return Type.Object({
    input: Type.String({ minLength: 1, maxLength: maxMessageChars }),
    room: Type.Optional(RoomPayload.properties.room)
  })
}

export const StopAgentPayload = Type.Object({ runId: Type.String({ minLength: 1, maxLength: 64 }) })

/**
 * `start_agent` `{ input, room? }` → `agent_started` `{ runId, userId, room?, agentName }`,
 * then `agent_thinking`, `tool_executing`, `tool_completed`, `agent_progress`
 * as the runner yields, then one `agent_completed` `{ runId, status, finalResponse?, error? }`
 * (after `agent_error` when the runner threw). Every event carries the
 * request's id and the `runId`.
 *
 * `stop_agent` `{ runId }` aborts one of the connection's runs (acked;
 * `NOT_FOUND` for a run it does not have). Without the `agent` option,
 * `start_agent` answers `NOT_CONFIGURED`; past `maxConcurrentRuns` runs on
 * the connection, `OVERLOADED`.
 */
export function registerAgent (router: BuiltinHost): AgentRuns {
  const { agent, agentName, maxConcurrentRuns, maxMessageChars } = router.config
  const runs = new AgentRuns()
  router.state.set('agent', runs)
  router.onConnectionClosed((connectionId) => runs.connectionClosed(connectionId))

  router.on('start_agent', { schema: startAgentSchema(maxMessageChars), replyType: 'agent_started' }, (payload, ctx) => {
    if (agent === undefined) throw new WsRouterError(WireErrorCode.NOT_CONFIGURED, 'No agent is configured on this server')
    const room = payload.room
    if (room !== undefined) requireMember(router, ctx.connectionId, room)
    if (runs.countFor(ctx.connectionId) >= maxConcurrentRuns) {
      throw new WsRouterError(WireErrorCode.OVERLOADED, `At most ${maxConcurrentRuns} agent runs at once per connection: stop one or wait for one to end`)
    }
    const run = new AgentRun({ connectionId: ctx.connectionId, userId: ctx.userId, log: ctx.log }, ctx.id, room)
    runs.add(run)
    router.countBuiltin('agent.started')
    const started: { runId: string, userId: string, room?: string, agentName: string } = { runId: run.runId, userId: ctx.userId, agentName }
    if (room !== undefined) started.room = room
    // Replied before the runner starts, so agent_started is the run's first frame.
    const startedSent = ctx.reply(started)
    execute(router, runs, run, agent, payload.input, startedSent).catch((err: unknown) => {
      // execute() handles its own failures; reaching this is a bug here, not in the runner.
      run.log.error({ err, runId: run.runId, environment: router.config.environment }, 'agent run bookkeeping failed')
      runs.delete(run)
    })
  })

  router.on('stop_agent', { schema: StopAgentPayload }, (payload, ctx) => {
    const run = runs.get(ctx.connectionId, payload.runId)
    if (run === undefined) throw new WsRouterError(WireErrorCode.NOT_FOUND, `No agent run "${payload.runId}" is in progress on this connection`)
    run.abort(new DOMException('agent run stopped by the client', 'AbortError'))
  })

  return runs
}

async function execute (router: BuiltinHost, runs: AgentRuns, run: AgentRun, agent: AgentRunner, input: string, startedSent: Promise<SendResult>): Promise<void> {
  const started = await startedSent
  if (!started.ok) {
    // The client never learnt the runId: running the agent would be work for no one.
    run.abort(new DOMException(`agent_started could not be sent (${started.reason})`, 'AbortError'))
  }
  // Also stopped, or its connection closed, while agent_started was being written.
  const runOnce = (): Promise<RunOutcome> => run.signal.aborted ? Promise.resolve(CANCELLED) : iterate(router, run, agent, input)
  const tracing = router.tracing
  const outcome = tracing === null ? await runOnce() : await tracing.agentRun({ id: run.owner.connectionId, userId: run.owner.userId }, run.runId, router.config.agentName, runOnce)
  // Forgotten before the terminal event, so a client that starts its next
  // run on agent_completed is never refused for this one.
  runs.delete(run)
  router.countBuiltin(`agent.${outcome.status}`)
  run.log.debug({ runId: run.runId, status: outcome.status, durationMs: Date.now() - run.startedAt }, 'agent run ended')
  // A closed connection can take no terminal event; trying would only log a NOT_OPEN.
  // (Resume, issue 12: a parked or resumed session still can.)
  if (!router.canReceive(run.owner.connectionId)) return
  if (outcome.error !== undefined) {
    await emit(router, run, 'agent_error', { runId: run.runId, code: outcome.error.code, message: outcome.error.message })
  }
  const completed: { runId: string, status: RunStatus, finalResponse?: unknown, error?: RunOutcome['error'] } = { runId: run.runId, status: outcome.status }
  if (outcome.finalResponse !== undefined) completed.finalResponse = outcome.finalResponse
  if (outcome.error !== undefined) completed.error = outcome.error
  await emit(router, run, 'agent_completed', completed)
}

/** Pull steps one at a time, each sent before the next is asked for (the client paces the runner). */
async function iterate (router: BuiltinHost, run: AgentRun, agent: AgentRunner, input: string): Promise<RunOutcome> {
  let steps: Steps | undefined
  let outcome: RunOutcome = CANCELLED
  try {
    steps = agent(input, run.context)
    for (;;) {
      const next = await nextOrAbort(steps, run)
      if (next === ABORTED) break
      if (next.done === true) {
        outcome = next.value === undefined ? COMPLETED_EMPTY : { status: 'completed', finalResponse: next.value }
        break
      }
      const sent = await emitStep(router, run, next.value)
      if (!sent.ok && sent.reason !== SendFailure.DROPPED) {
        if (isContentFailure(sent.reason)) {
          throw new WsRouterError(WireErrorCode.AGENT_ERROR, `An agent event could not be sent (${sent.reason})`)
        }
        // The connection can take no more (closed, stuck, timed out): stop the work.
        run.abort(new DOMException(`the connection cannot receive agent events (${sent.reason})`, 'AbortError'))
        break
      }
      if (run.signal.aborted) break
    }
  } catch (err) {
    // Stopped meanwhile (an event failing as the connection went): the stop decides the outcome.
    outcome = run.signal.aborted ? CANCELLED : failed(router, run, err)
  }
  if (outcome.status !== 'completed' && steps !== undefined) closeSteps(steps, run)
  return outcome
}

function nextOrAbort (steps: Steps, run: AgentRun): Promise<NextStep> {
  if (run.signal.aborted) return Promise.resolve(ABORTED)
  return new Promise<NextStep>((resolve, reject) => {
    run.wake = resolve
    // After an abort settled this promise, a late step or error goes nowhere.
    steps.next().then(resolve, reject)
  })
}

function emitStep (router: BuiltinHost, run: AgentRun, step: AgentStep): Promise<SendResult> {
  const runId = run.runId
  switch (step.type) {
    case 'thinking':
      return emit(router, run, 'agent_thinking', { runId, reasoning: step.reasoning })
    case 'tool_start':
      run.toolStarted(step.toolName, Date.now())
      return emit(router, run, 'tool_executing', { runId, toolName: step.toolName, parameters: step.parameters ?? null })
    case 'tool_end':
      return emit(router, run, 'tool_completed', { runId, toolName: step.toolName, results: step.results ?? null, durationMs: run.toolEnded(step.toolName, Date.now()) })
    case 'progress':
      return emit(router, run, 'agent_progress', progressPayload(runId, step), true)
    default:
      throw new TypeError(`The agent yielded a step of unknown type ${JSON.stringify((step as { type?: unknown }).type)}`)
  }
}

/** The step's own fields, under the run's id (a step cannot claim another run). */
function progressPayload (runId: string, step: AgentStep): Record<string, unknown> {
  const payload: Record<string, unknown> = { runId }
  for (const key of Object.keys(step)) {
    if (key !== 'type' && key !== 'runId') payload[key] = (step as Record<string, unknown>)[key]
  }
  return payload
}

function emit (router: BuiltinHost, run: AgentRun, type: string, payload: unknown, droppable = false): Promise<SendResult> {
  return router.sendFrame(run.owner.connectionId, type, run.requestId, payload, droppable ? DROPPABLE : NUMBERED)
}

/** The socket is fine but this event could not go out: the run's transcript would have a hole. */
function isContentFailure (reason: SendFailure): boolean {
  return reason === SendFailure.TOO_LARGE || reason === SendFailure.SERIALIZE || reason === SendFailure.INVALID_OUTBOUND
}

/** Log the real error once; the client sees its own code and message only when they were meant for it. */
function failed (router: BuiltinHost, run: AgentRun, err: unknown): RunOutcome {
  run.log.error({ err, runId: run.runId, environment: router.config.environment }, 'agent run failed')
  const coded = isWsRouterError(err)
  const message = coded || (router.config.exposeErrorMessages && err instanceof Error) ? (err as Error).message : GENERIC_AGENT_MESSAGE
  return { status: 'failed', error: { code: coded ? err.code : WireErrorCode.AGENT_ERROR, message } }
}

/**
 * Let the generator run its `finally` blocks. Not awaited: a runner stuck
 * in a step that ignores its signal would hold the caller forever.
 */
function closeSteps (steps: Steps, run: AgentRun): void {
  if (typeof steps.return !== 'function') return
  const onError = (err: unknown): void => run.log.warn({ err, runId: run.runId }, 'agent runner failed while closing')
  try {
    steps.return(undefined).then(undefined, onError)
  } catch (err) {
    onError(err)
  }
}
