import type { AgentRunner, AgentStep } from '../lib/index.js'

/**
 * DEMO agent, deterministic and offline: it "thinks", finds an arithmetic
 * expression in the input, calls a calculator tool on it, and answers. It
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

export const demoCalculatorAgent: AgentRunner = async function * demoCalculatorAgent (input, ctx): AsyncGenerator<AgentStep, unknown, undefined> {
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
