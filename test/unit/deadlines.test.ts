import t from 'tap'
import { DeadlineSweeper } from '../../lib/deadlines.js'

t.test('one sweep expires exactly the entries past their deadline (injected clock)', async (t) => {
  const sweeper = new DeadlineSweeper(1000)
  t.teardown(() => sweeper.stop())
  const expired: string[] = []
  const entry = (name: string, deadline: number) => ({ deadline, expire: () => { expired.push(name) } })
  const early = entry('early', 100)
  const late = entry('late', 300)
  sweeper.add(early)
  sweeper.add(late)
  const gone = entry('gone', 50)
  sweeper.add(gone)
  sweeper.delete(gone)
  t.equal(sweeper.size, 2)
  sweeper.sweep(99)
  t.same(expired, [])
  sweeper.sweep(100)
  t.same(expired, ['early'])
  t.equal(sweeper.size, 1)
  sweeper.sweep(1000)
  t.same(expired, ['early', 'late'])
  t.equal(sweeper.size, 0, 'the interval stops when nothing is pending')
})

t.test('a deadline fires within one tick in real time', async (t) => {
  const sweeper = new DeadlineSweeper(100)
  t.teardown(() => sweeper.stop())
  // The sweeper's interval is unref'd (it never holds the process open): keep this test alive meanwhile.
  const keepAlive = setTimeout(() => {}, 5000)
  t.teardown(() => clearTimeout(keepAlive))
  const started = Date.now()
  const fired = await new Promise<number>((resolve) => sweeper.add({ deadline: started + 50, expire: () => resolve(Date.now()) }))
  t.ok(fired >= started + 50, 'not before its time')
  t.ok(fired - started < 2000, `fired after ${fired - started} ms (tick 10 ms; generous bound under load)`)
})
