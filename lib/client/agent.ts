import { ClientError, ClientErrorCode } from './errors.js'
import type { PendingEntry } from './requests.js'
import type { AgentEvent, Frame } from './types.js'

/**
 * Start a run: the run, and the request-table entry of its `start_agent`
 * frame, which hands every frame with its id to the run. `stop` sends
 * `stop_agent` with the run's id; `onFail` runs when the entry fails
 * (before the run learns it).
 */
export function startRun (
  id: number,
  input: string,
  room: string | undefined,
  stop: (runId: string) => Promise<void>,
  onFail?: (entry: PendingEntry) => void
): { run: AgentRun, entry: PendingEntry } {
  const run = new AgentRun(stop)
  const payload = room === undefined ? { input } : { input, room }
  const entry: PendingEntry = {
    id,
    type: 'start_agent',
    text: JSON.stringify({ type: 'start_agent', id, payload }),
    idempotent: false,
    resumable: true,
    sent: false,
    accept: (frame) => run.accept(frame),
    fail: (error) => {
      onFail?.(entry)
      run.fail(error)
    }
  }
  return { run, entry }
}

/**
 * One agent run as an async iterable of its events, from `agent_started`
 * to exactly one `agent_completed` (docs/protocol.md#agent-runs). Leaving a
 * `for await` loop early stops the run on the server. The events are
 * buffered until read: a run is finite and ends with the connection.
 */
export class AgentRun implements AsyncIterable<AgentEvent> {
  /** The server's id of the run, once `agent_started` arrived. */
  runId: string | undefined
  private readonly events: AgentEvent[] = []
  private waiter: { resolve: (result: IteratorResult<AgentEvent>) => void, reject: (err: ClientError) => void } | null = null
  private failure: ClientError | null = null
  private completed = false
  private stopping: Promise<void> | null = null
  private stopWanted = false
  private iterating = false

  /** `sendStop` sends `stop_agent` and resolves with its ack. */
  constructor (private readonly sendStop: (runId: string) => Promise<void>) {}

  /** Takes a frame of this run; `true` once the run is over. */
  accept (frame: Frame): boolean {
    if (frame.type === 'error') {
      const body = (frame.payload ?? {}) as { code?: unknown, message?: unknown, details?: unknown, ref?: unknown }
      this.fail(new ClientError(String(body.code ?? 'UNKNOWN_ERROR'), String(body.message ?? 'Agent run refused'), body.details, typeof body.ref === 'string' ? body.ref : undefined))
      return true
    }
    const event = { type: frame.type, payload: frame.payload } as AgentEvent
    if (event.type === 'agent_started') {
      this.runId = event.payload.runId
      // A stop asked for before the run had an id. Its outcome stays in
      // `stopping`, where a later stop() returns it; here it is only started.
      if (this.stopWanted) this.stop().catch(() => {})
    }
    if (event.type === 'agent_completed') this.completed = true
    this.push(event)
    return this.completed
  }

  /** The run ended without `agent_completed` (the connection closed, the client closed). */
  fail (error: ClientError): void {
    if (this.completed || this.failure !== null) return
    this.failure = error
    const waiter = this.waiter
    this.waiter = null
    waiter?.reject(error)
  }

  /**
   * Ask the server to stop the run; it then ends with `agent_completed`
   * `cancelled`. Before `agent_started` the stop is sent as soon as the run
   * has an id. Resolves when the server acknowledged it (at once for a run
   * that is over).
   */
  stop (): Promise<void> {
    if (this.completed || this.failure !== null) return Promise.resolve()
    if (this.runId === undefined) {
      this.stopWanted = true
      return Promise.resolve()
    }
    this.stopping ??= this.sendStop(this.runId)
    return this.stopping
  }

  [Symbol.asyncIterator] (): AsyncIterator<AgentEvent> {
    if (this.iterating) throw new TypeError('An agent run can be iterated once')
    this.iterating = true
    return {
      next: () => this.next(),
      return: async () => {
        // Leaving the loop early stops the run; a run whose connection is
        // gone was cancelled by the server already.
        try {
          await this.stop()
        } catch (err) {
          if (!(err instanceof ClientError) || (err.code !== ClientErrorCode.DISCONNECTED && err.code !== ClientErrorCode.CLOSED)) throw err
        }
        return { done: true, value: undefined }
      }
    }
  }

  private next (): Promise<IteratorResult<AgentEvent>> {
    const event = this.events.shift()
    if (event !== undefined) return Promise.resolve({ done: false, value: event })
    if (this.completed) return Promise.resolve({ done: true, value: undefined })
    if (this.failure !== null) return Promise.reject(this.failure)
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject } })
  }

  private push (event: AgentEvent): void {
    const waiter = this.waiter
    if (waiter === null) {
      this.events.push(event)
      return
    }
    this.waiter = null
    waiter.resolve({ done: false, value: event })
  }
}
