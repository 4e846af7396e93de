/**
 * The plugin server of targets (4) to (6). (4) is its built-in `ping` →
 * `pong`; (5) is `user_message`, whose payload `{room, text}` is checked by
 * a precompiled TypeBox validator before the handler runs; (6) is (5) with
 * the lifecycle features on (plugin-lifecycle.ts).
 *
 * The `production` preset (what a deployment runs: no outbound validation,
 * no error messages exposed), with anonymous clients allowed since the
 * benchmark has no authentication.
 */
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import type { WsRouterOptions } from '../../lib/index.js'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { control } from './control.js'
import { FASTIFY_OPTIONS, MAX_PAYLOAD_BYTES, userMessageReply } from './shared.js'

/**
 * Which build of the plugin runs: `WSR_BENCH_PLUGIN=dist` (set by `npm run
 * bench -- --plugin dist`) the published one, compiled by tsc into dist/
 * (`npm run build` first); a directory holding another tsc build (`dist/`
 * of an earlier commit: the `plugin-baseline` server, `--baseline DIR`);
 * otherwise the TypeScript sources through tsx.
 */
const PLUGIN_FROM = process.env.WSR_BENCH_PLUGIN ?? 'lib'
const libDir = PLUGIN_FROM === 'lib'
  ? '../../lib/'
  : PLUGIN_FROM === 'dist' ? '../../dist/lib/' : `${pathToFileURL(resolve(PLUGIN_FROM)).href}/lib/`
const { wsRouter } = await import(`${libDir}index.js`) as typeof import('../../lib/index.js')
const { buildConfig } = await import(`${libDir}options.js`) as typeof import('../../lib/options.js')

const UserMessage = Type.Object({ room: Type.String(), text: Type.String() })

const BASE_OPTIONS = {
  path: '/ws',
  environment: 'production',
  allowAnonymous: true,
  maxPayloadBytes: MAX_PAYLOAD_BYTES
} as const

/**
 * The options of a target that this version of the plugin knows. The
 * lifecycle options arrive in stages; the benchmark asks for all of them
 * and reports which ones the plugin did not know yet, instead of failing.
 */
function knownOptions (wanted: Record<string, unknown>): { applied: Record<string, unknown>, unknown: string[] } {
  const applied: Record<string, unknown> = {}
  const unknown: string[] = []
  for (const [key, value] of Object.entries(wanted)) {
    try {
      buildConfig({ ...BASE_OPTIONS, [key]: value } as WsRouterOptions)
    } catch (err) {
      // Unknown keys are refused before any value is checked; any other
      // error (one option alone may break a rule between two) means known.
      if ((err as { code?: string }).code === 'FST_WSR_UNKNOWN_OPTION') {
        unknown.push(key)
        continue
      }
    }
    applied[key] = value
  }
  return { applied, unknown }
}

/** Start the plugin server with the options of one target, then hand it to the harness. */
export async function startPlugin (name: string, wanted: Record<string, unknown>, builtinUserMessage = false): Promise<void> {
  const { applied, unknown } = knownOptions(wanted)
  const app = Fastify(FASTIFY_OPTIONS)
  await app.register(wsRouter, { ...BASE_OPTIONS, ...applied } as WsRouterOptions)
  // The plugin ships a chat `user_message` built-in (room fan-out); the
  // benchmark replaces it with the same request/reply the baselines serve,
  // except on `plugin-chat`, which measures the built-in itself.
  if (!builtinUserMessage) app.wsRouter.on('user_message', { schema: UserMessage, replyType: 'user_message_result', override: true }, (payload) => userMessageReply(payload))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('unexpected address')

  control(name, {
    port: address.port,
    info: { options: { ...BASE_OPTIONS, ...applied }, unknownOptions: unknown, pluginFrom: PLUGIN_FROM },
    connections: () => app.wsRouter.connectionCount,
    stats: () => ({ connectionCount: app.wsRouter.connectionCount, stats: app.wsRouter.getStats() }),
    close: () => app.close()
  })
}
