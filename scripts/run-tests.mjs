// Runs the tap suite and ends with the plain summary line CI reads:
// "N passed, N failed, N skipped". tap's own last lines are a comment like
// "# { total: 12, pass: 11, fail: 1 }", which this script translates.
import { spawn } from 'node:child_process'

const args = process.argv.slice(2)
const child = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', ...args], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: process.env
})

let tail = ''
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  tail = (tail + chunk.toString()).slice(-4096)
})

child.on('close', (code, signal) => {
  const match = /# \{ total: [^}]*\}/g
  const summaries = tail.match(match)
  const summary = summaries?.at(-1)
  const count = (key) => Number(new RegExp(`${key}: (\\d+)`).exec(summary ?? '')?.[1] ?? 0)
  if (summary === undefined) {
    console.log(`tests: no summary from tap (exit ${code ?? signal})`)
  } else {
    const failed = count('fail')
    console.log(`${count('pass')} passed, ${failed} failed, ${count('skip')} skipped`)
  }
  process.exit(code ?? 1)
})
