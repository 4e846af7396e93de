import t from 'tap'
import { hasRoom, invoke, Invocation } from '../../lib/invoke.js'
import type { Connection } from '../../lib/connection.js'
import type { RouterCore } from '../../lib/core.js'
import { stubRouter, type StubSocket } from '../helpers/stub-socket.js'
import { engineOf } from '../helpers/internals.js'

// The one invoke runner shared by envelope handlers and JSON-RPC methods:
// exactly one outcome per call, tracking only while a thenable runs, the
// deadline through the one sweeper (driven here with a chosen clock), the
// AbortSignal on timeout and close, and flow control at maxInFlight.

class Probe extends Invocation {
  readonly outcomes: Array<[string, unknown]> = []
  constructor (core: RouterCore, conn: Connection, readonly limitMs = 1000) { super(core, conn) }
  get timeoutMs (): number { return this.limitMs }
  get observedName (): string { return 'probe' }
  get kindName (): string { return 'Probe' }
  succeeded (value: unknown): void { this.outcomes.push(['succeeded', value]) }
  failed (err: unknown): void { this.outcomes.push(['failed', (err as Error).message]) }
  timedOut (message: string): void { this.outcomes.push(['timedOut', message]) }
  cancelled (): void { this.outcomes.push(['cancelled', undefined]) }
}

function setup (maxInFlight = 32): { core: RouterCore, conn: Connection, socket: StubSocket } {
  const { router, open } = stubRouter({ maxInFlight })
  const { socket, id } = open()
  const engine = engineOf(router)
  const conn = engine.connection(id)
  if (conn === undefined) throw new Error('no connection')
  return { core: engine, conn, socket }
}

function deferred (): { promise: Promise<unknown>, resolve: (value: unknown) => void, reject: (err: Error) => void } {
  let resolve: (value: unknown) => void = () => {}
  let reject: (err: Error) => void = () => {}
  const promise = new Promise<unknown>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
  return { promise, resolve, reject }
}

t.test('a sync return succeeds once and is never tracked', async (t) => {
  const { core, conn } = setup()
  const call = new Probe(core, conn)
  t.equal(invoke(call, (arg: number) => arg * 2, 21), false, 'not running after a sync return')
  t.same(call.outcomes, [['succeeded', 42]])
  t.equal(conn.inFlight, 0)
  t.equal(core.sweeper.size, 0)
  t.equal(call.deadline, 0)
})

t.test('a sync throw fails once', async (t) => {
  const { core, conn } = setup()
  const call = new Probe(core, conn)
  t.equal(invoke(call, () => { throw new Error('boom') }, undefined), false)
  t.same(call.outcomes, [['failed', 'boom']])
  t.equal(conn.inFlight, 0)
})

t.test('an async rejection: tracked while it runs, failed once, released after', async (t) => {
  const { core, conn } = setup()
  const call = new Probe(core, conn)
  const running = deferred()
  t.equal(invoke(call, () => running.promise, undefined), true, 'running')
  t.equal(conn.inFlight, 1, 'a pending entry on the connection')
  t.equal(core.sweeper.size, 1, 'a deadline in the one sweeper')
  t.same(call.outcomes, [])
  running.reject(new Error('later'))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(call.outcomes, [['failed', 'later']])
  t.equal(conn.inFlight, 0)
  t.equal(core.sweeper.size, 0)
})

t.test('any thenable counts, also one that settles inside then()', async (t) => {
  const { core, conn } = setup()
  const later = new Probe(core, conn)
  let fulfil: (value: unknown) => void = () => {}
  const thenable = { then (onFulfilled: (value: unknown) => void) { fulfil = onFulfilled } }
  t.equal(invoke(later, () => thenable, undefined), true)
  fulfil('value')
  t.same(later.outcomes, [['succeeded', 'value']])
  t.equal(conn.inFlight, 0)
  const atOnce = new Probe(core, conn)
  const eager = { then (onFulfilled: (value: unknown) => void) { onFulfilled('now') } }
  t.equal(invoke(atOnce, () => eager, undefined), false, 'already settled: not running')
  t.same(atOnce.outcomes, [['succeeded', 'now']])
  t.equal(conn.inFlight, 0)
  t.equal(core.sweeper.size, 0)
})

t.test('the deadline (chosen clock): timed out once, signal fired, a late value ignored', async (t) => {
  const { core, conn } = setup()
  const call = new Probe(core, conn, 250)
  const running = deferred()
  const before = Date.now()
  invoke(call, () => running.promise, undefined)
  const signal = call.signal
  t.ok(call.deadline >= before + 250 && call.deadline <= Date.now() + 250, 'deadline = start + timeoutMs')
  core.sweeper.sweep(call.deadline - 1)
  t.same(call.outcomes, [], 'not before its time')
  core.sweeper.sweep(call.deadline)
  t.same(call.outcomes, [['timedOut', 'Probe did not finish within 250 ms']])
  t.ok(signal.aborted, 'the handler is told through its signal')
  t.equal(conn.inFlight, 0)
  running.resolve('too late')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(call.outcomes.length, 1, 'one outcome only')
})

t.test('the connection closing cancels a running call and fires its signal with the reason', async (t) => {
  const { core, conn } = setup()
  const call = new Probe(core, conn)
  const running = deferred()
  invoke(call, () => running.promise, undefined)
  const signal = call.signal
  const reason = new Error('connection closed (1006)')
  conn.release(reason)
  t.same(call.outcomes, [['cancelled', undefined]])
  t.equal(signal.reason, reason)
  t.equal(core.sweeper.size, 0)
  running.resolve('after close')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(call.outcomes.length, 1)
  const finished = new Probe(core, conn)
  invoke(finished, () => 1, undefined)
  t.ok(finished.signal.aborted, 'a signal asked for after the end is already aborted')
})

t.test('flow control: reading pauses at maxInFlight running calls and resumes under it', async (t) => {
  const { core, conn, socket } = setup(2)
  const first = deferred()
  const second = deferred()
  t.ok(hasRoom(core, conn))
  invoke(new Probe(core, conn), () => first.promise, undefined)
  t.notOk(socket.paused)
  invoke(new Probe(core, conn), () => second.promise, undefined)
  t.ok(socket.paused, 'paused at the cap')
  t.notOk(hasRoom(core, conn), 'no room for a third')
  first.resolve(1)
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(socket.paused, 'resumed under the cap')
  t.ok(hasRoom(core, conn))
  second.resolve(2)
})

t.test('the observer is told each duration once, under the call\'s name', async (t) => {
  const { core, conn } = setup()
  const seen: string[] = []
  core.observer = { handlerSettled: (type) => { seen.push(type) }, fanout: () => {} }
  const call = new Probe(core, conn)
  const running = deferred()
  invoke(call, () => running.promise, undefined)
  t.ok(call.startedAt > 0, 'the clock is read only when observed')
  running.resolve(1)
  await new Promise((resolve) => setImmediate(resolve))
  t.same(seen, ['probe'])
  core.observer = null
  const unobserved = new Probe(core, conn)
  invoke(unobserved, () => 1, undefined)
  t.equal(unobserved.startedAt, 0)
})
