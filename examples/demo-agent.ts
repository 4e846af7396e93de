import type { AgentRunner, AgentStep } from '../lib/index.js'

/**
 * DEMO agent, deterministic and offline: it "thinks", finds an arithmetic
 * expression in the input, calls a calculator tool on it, and answers. Asked
 * to "count to N" (N ≤ 20), it counts slowly, one progress event per 300 ms. It
 * stands in for an LLM loop (see docs/agents.md for a real SDK's stream);
 * it is not one.
 */

const EXPRESSION = /[-+*/().\d\s]*\d[-+*/().\d\s]*/g

/** Evaluate + - * / and parentheses without eval: a small recursive-descent parser. */
export function calculate (expression: string): number {
  const tokens = expression.match(/\d+(?:\.\d+)?|[-+*/()]/g) ?? []
  let position = 0
  const peek = (): string | undefined => tokens[position]
  const take = (): string | undefined => tokens[position++]
  const factor = (): number => {
    const token = take()
    if (token === '-') return -factor()
    if (token === '(') {
      const value = sum()
      if (take() !== ')') throw new Error('missing )')
      return value
    }
    const value = Number(token)
    if (token === undefined || Number.isNaN(value)) throw new Error(`unexpected ${token ?? 'end'}`)
    return value
  }
  const product = (): number => {
    let value = factor()
    while (peek() === '*' || peek() === '/') value = take() === '*' ? value * factor() : value / factor()
    return value
  }
  const sum = (): number => {
    let value = product()
    while (peek() === '+' || peek() === '-') value = take() === '+' ? value + product() : value - product()
    return value
  }
  const result = sum()
  if (position !== tokens.length) throw new Error(`unexpected ${peek() ?? 'end'}`)
  return result
}

function pause (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}

/** "count to 10": a slow run (one step per COUNT_STEP_MS) that the browser demo can stop half-way. */
const COUNT_REQUEST = /\bcount to (\d{1,2})\b/i
const COUNT_STEP_MS = 300
const MAX_COUNT = 20

async function * countSlowly (target: number, signal: AbortSignal): AsyncGenerator<AgentStep, unknown, undefined> {
  yield { type: 'tool_start', toolName: 'counter', parameters: { to: target } }
  for (let n = 1; n <= target && !signal.aborted; n++) {
    await pause(COUNT_STEP_MS, signal)
    yield { type: 'progress', stage: `counted ${n}`, percent: Math.round((n / target) * 100) }
  }
  yield { type: 'tool_end', toolName: 'counter', results: { counted: target } }
  return { text: `Counted to ${target}.` }
}

export const demoCalculatorAgent: AgentRunner = async function * demoCalculatorAgent (input, ctx): AsyncGenerator<AgentStep, unknown, undefined> {
  const count = COUNT_REQUEST.exec(input)
  if (count !== null) {
    yield { type: 'thinking', reasoning: 'Asked to count: one step at a time, so the run can be stopped.' }
    return yield * countSlowly(Math.min(MAX_COUNT, Math.max(1, Number(count[1]))), ctx.signal)
  }
  yield { type: 'thinking', reasoning: 'Looking for an arithmetic expression in the question.' }
  await pause(50, ctx.signal)
  const candidates = (input.match(EXPRESSION) ?? []).map((match) => match.trim()).filter((match) => /\d\s*[-+*/]\s*[\d(-]/.test(match))
  const expression = candidates.sort((a, b) => b.length - a.length)[0]
  if (expression === undefined) {
    return { text: 'I am a demo calculator agent: ask me something like "what is (2 + 3) * 4?"' }
  }
  yield { type: 'tool_start', toolName: 'calculator', parameters: { expression } }
  yield { type: 'progress', stage: 'calculating', percent: 50 }
  await pause(50, ctx.signal)
  const value = calculate(expression)
  yield { type: 'tool_end', toolName: 'calculator', results: { value } }
  return { text: `${expression} = ${value}` }
}
