import { createRequire } from 'node:module'
import type { Static as Static034, TSchema as TSchema034 } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Static as Static1, TSchema as TSchema1 } from 'typebox'
import { FST_WSR_INVALID_HANDLER, FST_WSR_TYPEBOX_MISSING } from './errors.js'

/**
 * Schemas from both TypeBox packages: `@sinclair/typebox` 0.34 (the router's
 * own) and `typebox` 1.x (what `@fastify/type-provider-typebox` 6 uses), so one
 * schema serves an HTTP route and a WebSocket handler. Each is compiled once,
 * at registration, by its own package's compiler; `typebox` is an optional
 * peer, loaded the first time a 1.x schema is registered, never before.
 */

/** A payload, reply or params schema from either TypeBox. */
export type WsSchema = TSchema034 | TSchema1

/**
 * The type a schema describes, `unknown` without one. 0.34 is tried first:
 * a 1.x `TSchema` is an empty interface that every object matches.
 */
export type StaticOf<S> = S extends TSchema034 ? Static034<S> : S extends TSchema1 ? Static1<S> : unknown

/** One failing path of a value, for `VALIDATION_FAILED` / -32602 details. */
export interface SchemaIssue {
  path: string
  message: string
}

/** A compiled schema, whichever package made it. */
export interface SchemaCheck {
  /** The schema as registered, for documents generated from the registry. */
  readonly schema: WsSchema
  /** True when the value matches; the per-frame path. */
  Check: (value: unknown) => boolean
  /** The failing paths (at most `limit`), read only when `Check` said no. */
  issues: (value: unknown, limit: number) => SchemaIssue[]
}

/** 0.34 marks every schema with this registered Symbol. */
const kind034 = Symbol.for('TypeBox.Kind')

/** What a schema is, read from its own markers, without importing either package. */
export function schemaFlavour (schema: unknown): '0.34' | '1.x' | 'unknown' {
  if (schema === null || typeof schema !== 'object') return 'unknown'
  if (kind034 in schema) return '0.34'
  // 1.x keeps its kind in a non-enumerable `~kind` property.
  if ('~kind' in schema) return '1.x'
  return 'unknown'
}

interface Validator1 {
  Check: (value: unknown) => boolean
  Errors: (value: unknown) => Array<{ instancePath: string, message: string }>
}

type Compile1 = (schema: unknown) => Validator1

let compile1: Compile1 | undefined
const requireOptional = createRequire(import.meta.url)

/** `typebox/compile` is ESM only: require(esm) loads it synchronously on Node >= 20.19. */
function loadCompile1 (owner: string): Compile1 {
  if (compile1 !== undefined) return compile1
  try {
    compile1 = (requireOptional('typebox/compile') as { Compile: Compile1 }).Compile
  } catch (err) {
    throw new FST_WSR_TYPEBOX_MISSING(owner, (err as Error).message)
  }
  return compile1
}

function compile034 (schema: TSchema034): SchemaCheck {
  const check = TypeCompiler.Compile(schema)
  return {
    schema,
    Check: (value) => check.Check(value),
    issues (value, limit) {
      const found: SchemaIssue[] = []
      for (const error of check.Errors(value)) {
        found.push({ path: error.path === '' ? '/' : error.path, message: error.message })
        if (found.length >= limit) break
      }
      return found
    }
  }
}

function compileV1 (owner: string, schema: unknown): SchemaCheck {
  const validator = loadCompile1(owner)(schema)
  return {
    schema: schema as WsSchema,
    Check: (value) => validator.Check(value),
    issues: (value, limit) => validator.Errors(value).slice(0, limit).map((error) => ({
      path: error.instancePath === '' ? '/' : error.instancePath,
      message: error.message
    }))
  }
}

/**
 * Compile a schema once, at registration. `owner` names the message type or
 * method in the error: FST_WSR_INVALID_HANDLER when the schema does not
 * compile, FST_WSR_TYPEBOX_MISSING when a 1.x schema meets no `typebox`.
 */
export function compileSchema (owner: string, schema: WsSchema, what = 'schema'): SchemaCheck {
  const flavour = schemaFlavour(schema)
  try {
    // Anything else goes to 0.34's compiler, which names what it refuses.
    return flavour === '1.x' ? compileV1(owner, schema) : compile034(schema as TSchema034)
  } catch (err) {
    if ((err as { code?: unknown }).code === 'FST_WSR_TYPEBOX_MISSING') throw err
    throw new FST_WSR_INVALID_HANDLER(owner, `${what} does not compile: ${(err as Error).message}`)
  }
}

/** The failing paths of a value, for `VALIDATION_FAILED` details (at most `limit`). */
export function validationDetails (check: SchemaCheck, value: unknown, limit = 10): Array<{ path: string, message: string }> {
  return check.issues(value, limit)
}
