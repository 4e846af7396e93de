import { Type } from '@sinclair/typebox'
import type { Connection } from './connection.js'
import type { OutcomeSink } from './context.js'
import { processEnvelope, rateLimited, type PipelineHost } from './dispatch.js'
import { rejectFrame } from './error-frames.js'
import { readEnvelope, type MessageId } from './envelope.js'
import { WireErrorCode, WsRouterError } from './errors.js'
import { takeToken } from './rate-limit.js'
import type { BuiltinHost } from './builtin-host.js'

const BatchPayload = Type.Object({ messages: Type.Array(Type.Unknown()) })

export interface BatchItemResult {
  index: number
  id?: MessageId
  ok: boolean
  error?: { code: string, message: string }
}

/**
 * `batch` `{ messages: [envelopes] }` → every item runs in order, as if it
 * had arrived alone (its own replies and errors flow as usual; a failing item
 * does not stop the next; each item takes a rate-limit token), then
 * `batch_result` `{ results: [{ index, id?, ok, error? }] }`.
 */
/** What `batch` needs of its router: the frame path, and registering itself as a built-in does. */
export interface BatchHost extends PipelineHost {
  readonly builtins: BuiltinHost
}

export function registerBatch (router: BatchHost): void {
  const { maxBatchSize } = router.builtins.config
  router.builtins.on('batch', { schema: BatchPayload, replyType: 'batch_result' }, async (payload, ctx) => {
    const items = payload.messages
    if (items.length > maxBatchSize) {
      throw new WsRouterError(WireErrorCode.BATCH_TOO_LARGE, `A batch holds at most ${maxBatchSize} messages (got ${items.length})`)
    }
    const conn = ctx.conn
    const results: BatchItemResult[] = []
    for (let index = 0; index < items.length; index++) {
      if (!conn.isOpen || ctx.signal.aborted) break
      results.push(await runItem(router, conn, items[index], index, ctx.seq))
    }
    return { results }
  })
}

function runItem (router: BatchHost, conn: Connection, item: unknown, index: number, seq: number): Promise<BatchItemResult> {
  const decoded = readEnvelope(item)
  if (!decoded.ok) {
    router.stats.countInvalid(decoded.code)
    rejectFrame(router, conn, { code: decoded.code, message: decoded.message, id: decoded.id, level: 'warn', seq, blame: 'client' })
    return Promise.resolve(itemResult(index, decoded.id, false, decoded.code, decoded.message))
  }
  const { type, id, payload } = decoded
  if (type === 'batch') {
    const message = 'A batch cannot contain a batch'
    router.stats.countInvalid(WireErrorCode.INVALID_MESSAGE)
    rejectFrame(router, conn, { code: WireErrorCode.INVALID_MESSAGE, message, id, messageType: type, level: 'warn', seq, blame: 'client' })
    return Promise.resolve(itemResult(index, id, false, WireErrorCode.INVALID_MESSAGE, message))
  }
  const rateLimit = router.config.rateLimit
  if (rateLimit !== false && !takeToken(conn, rateLimit, Date.now())) {
    rateLimited(router, conn, id, Date.now())
    return Promise.resolve(itemResult(index, id, false, WireErrorCode.RATE_LIMITED, 'Rate limit exceeded'))
  }
  return new Promise((resolve) => {
    const sink: OutcomeSink = {
      settle: (ok, code, message) => resolve(itemResult(index, id, ok, code, message))
    }
    processEnvelope(router, conn, type, id, payload, seq, sink)
  })
}

function itemResult (index: number, id: MessageId | undefined, ok: boolean, code?: string, message?: string): BatchItemResult {
  const result: BatchItemResult = { index, ok }
  if (id !== undefined) result.id = id
  if (!ok) result.error = { code: code ?? WireErrorCode.HANDLER_ERROR, message: message ?? 'failed' }
  return result
}
