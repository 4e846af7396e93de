import type { FastifyInstance } from 'fastify'
import { builtinRegistrars, type BuiltinName } from '../../lib/handlers/index.js'

/** The first type each built-in registers: present means the plugin registered it. */
const firstType: Record<BuiltinName, string> = {
  connection: 'connect',
  rooms: 'join',
  typing: 'typing_started',
  userMessage: 'user_message',
  agent: 'start_agent',
  clientError: 'client_error'
}

/**
 * Register the built-ins the plugin has not (yet) registered itself, as
 * `registerBuiltins` would: switched-off ones stay off. Once plugins/router.ts
 * calls `registerBuiltins`, this registers nothing.
 */
export function withBuiltins (app: FastifyInstance): void {
  const router = app.wsRouter
  for (const name of Object.keys(builtinRegistrars) as BuiltinName[]) {
    if (router.config.builtins[name] && !router.hasHandler(firstType[name])) builtinRegistrars[name](router)
  }
}
