// Runs the type tests (test/types/*.tst.ts, tstyche) inside `npm test`:
// the client's request/reply/event typing and the server's inference from a
// contract, in both directions (what must compile and what must not).
import t from 'tap'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const packageJson = require.resolve('tstyche/package.json')
const declared = (require(packageJson) as { bin: string | Record<string, string> }).bin
const bin = join(dirname(packageJson), typeof declared === 'string' ? declared : declared.tstyche ?? '')

t.test('tstyche type tests pass', async (t) => {
  const { code, output } = await new Promise<{ code: number | null, output: string }>((resolve) => {
    const child = spawn(process.execPath, [bin], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.on('close', (exitCode) => { resolve({ code: exitCode, output }) })
  })
  t.equal(code, 0, output)
  t.match(output, /Assertions:\s+\d+ passed, \d+ total/, 'assertions ran')
  t.notMatch(output, /failed/)
})
