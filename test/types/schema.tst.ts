// Type tests (tstyche): payload, reply and params types are inferred from
// schemas of both TypeBox packages, and a misspelt field does not compile.
import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import { Type as Type034 } from '@sinclair/typebox'
import Type from 'typebox'
import type { PayloadOf } from '../../lib/index.js'
import '../../lib/index.js'

const app = Fastify()

const note034 = Type034.Object({ text: Type034.String(), tags: Type034.Optional(Type034.Array(Type034.String())) })
const note1 = Type.Object({ text: Type.String(), tags: Type.Optional(Type.Array(Type.String())) })

test('PayloadOf infers from both packages', () => {
  expect<PayloadOf<typeof note034>>().type.toBe<{ text: string, tags?: string[] }>()
  expect<PayloadOf<typeof note1>>().type.toBe<{ text: string, tags?: string[] }>()
  expect<PayloadOf<undefined>>().type.toBe<unknown>()
})

test('on(): the same schemas, in handlers', () => {
  app.wsRouter.on('tags', { schema: note1 }, (payload) => payload.tags?.length)
  app.wsRouter.on('tags034', { schema: note034 }, (payload) => payload.tags?.length)
})

test('on(): the handler sees the payload type, its reply is checked against replySchema', () => {
  app.wsRouter.on('note', { schema: Type.Object({ text: Type.String() }), replySchema: Type.Object({ length: Type.Number() }) }, (payload) => {
    expect(payload).type.toBe<{ text: string }>()
    return { length: payload.text.length }
  })
  app.wsRouter.on('note034', { schema: Type034.Object({ text: Type034.String() }) }, (payload) => {
    expect(payload).type.toBe<{ text: string }>()
  })
  // a misspelt payload field (1.x schema):
  // @ts-expect-error Property 'txt' does not exist on type '{ text: string; }'
  app.wsRouter.on('typo', { schema: Type.Object({ text: Type.String() }) }, (payload) => payload.txt)
  // a misspelt payload field (0.34 schema):
  // @ts-expect-error Property 'txt' does not exist on type '{ text: string; }'
  app.wsRouter.on('typo034', { schema: Type034.Object({ text: Type034.String() }) }, (payload) => payload.txt)
  // a reply that does not match replySchema (1.x):
  // @ts-expect-error Type 'string' is not assignable to type 'number'
  app.wsRouter.on('wrong', { replySchema: Type.Object({ length: Type.Number() }) }, () => ({ length: 'long' }))
})

test('method(): params are inferred from both packages', () => {
  app.wsRouter.method('add', { params: Type.Tuple([Type.Number(), Type.Number()]) }, (params) => {
    expect(params).type.toBe<[number, number]>()
    return params[0] + params[1]
  })
  app.wsRouter.method('add034', { params: Type034.Tuple([Type034.Number(), Type034.Number()]) }, (params) => {
    expect(params).type.toBe<[number, number]>()
    return params[0] + params[1]
  })
})
