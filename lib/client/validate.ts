import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { TSchema } from '@sinclair/typebox'
import type { Contract } from '../contracts.js'
import { builtinContract } from '../builtin-contract.js'
import type { ClientValidator } from './types.js'

/**
 * `fastify-ws-router/client/validate`: client-side validation from a
 * contract. This entry brings TypeBox's compiler into the bundle; the client
 * without it does not. Schemas are compiled once, here.
 *
 * @example
 * import { contractValidator } from 'fastify-ws-router/client/validate'
 * const client = createClient<typeof contract>({ url, validate: contractValidator(contract) })
 */
export function contractValidator (contract: Contract, options: { builtins?: boolean } = {}): ClientValidator {
  const checks = {
    payload: new Map<string, TypeCheck<TSchema>>(),
    reply: new Map<string, TypeCheck<TSchema>>(),
    event: new Map<string, TypeCheck<TSchema>>()
  }
  const sources = options.builtins === false ? [contract] : [builtinContract, contract]
  for (const source of sources) {
    for (const [type, spec] of Object.entries(source.messages)) {
      if (spec.payload !== undefined) checks.payload.set(type, TypeCompiler.Compile(spec.payload))
      if (spec.reply !== undefined) checks.reply.set(type, TypeCompiler.Compile(spec.reply))
    }
    for (const [type, schema] of Object.entries(source.events)) checks.event.set(type, TypeCompiler.Compile(schema))
  }
  return (kind, type, value) => {
    const check = checks[kind].get(type)
    if (check === undefined || check.Check(value)) return undefined
    const first = check.Errors(value).First()
    return first === undefined ? 'invalid' : `${first.path === '' ? '/' : first.path}: ${first.message}`
  }
}
