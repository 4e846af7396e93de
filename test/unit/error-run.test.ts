import t from 'tap'
import { frameFailed, frameSucceeded, nextFrame, runBlame, type ErrorRunState } from '../../lib/error-run.js'

const fresh = (): ErrorRunState => ({ frameSeq: 0, lastSuccessSeq: 0, failures: null })

t.test('failures in arrival order make a run; a success resets the failures before it', async (t) => {
  const state = fresh()
  const seqs = Array.from({ length: 8 }, () => nextFrame(state))
  t.same(seqs, [1, 2, 3, 4, 5, 6, 7, 8])
  t.equal(frameFailed(state, 1, 'client'), 1)
  t.equal(frameFailed(state, 2, 'client'), 2)
  frameSucceeded(state, 3)
  t.equal(state.failures, null, 'the run before the success is gone')
  t.equal(frameFailed(state, 4, 'client'), 1)
})

t.test('a success known late does not reset failures that arrived after it', async (t) => {
  const state = fresh()
  for (let i = 0; i < 6; i++) nextFrame(state)
  for (const seq of [2, 3, 4, 5]) frameFailed(state, seq, 'client')
  frameSucceeded(state, 1)
  t.equal(state.failures?.length, 4)
  t.equal(frameFailed(state, 6, 'client'), 5)
})

t.test('a failure that arrived before the last success breaks no run', async (t) => {
  const state = fresh()
  frameSucceeded(state, 5)
  t.equal(frameFailed(state, 3, 'server'), 0)
  t.equal(state.failures, null)
  t.equal(frameFailed(state, 5, 'server'), 1, 'the same frame may fail after succeeding (its reply)')
})

t.test('the run is the server\'s when any failure in it is', async (t) => {
  const state = fresh()
  frameFailed(state, 1, 'client')
  t.equal(runBlame(state), 'client')
  frameFailed(state, 2, 'server')
  frameFailed(state, 3, 'client')
  t.equal(runBlame(state), 'server')
  frameSucceeded(state, 2)
  t.equal(runBlame(state), 'client', 'only what is left of the run counts')
})
