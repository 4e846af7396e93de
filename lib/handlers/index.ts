import type { BuiltinSwitches } from '../options.js'
import type { BuiltinHost } from '../builtin-host.js'
import { registerAgent } from './agent.js'
import { registerClientError } from './client-error.js'
import { registerConnection } from './connection.js'
import { registerRooms } from './rooms.js'
import { registerTyping, type TypingTracker } from './typing.js'
import { registerUserMessage } from './user-message.js'

/** The built-ins this module registers, by their switch in `builtins` (`batch` lives with dispatch). */
export type BuiltinName = Exclude<keyof BuiltinSwitches, 'batch'>

export const builtinRegistrars: Readonly<Record<BuiltinName, (router: BuiltinHost) => unknown>> = Object.freeze({
  connection: registerConnection,
  // Whoever leaves a room stops typing there (the indicator would otherwise last until it expires).
  rooms: (router: BuiltinHost) => registerRooms(router, (connectionId, userId, room) => {
    (router.state.get('typing') as TypingTracker | undefined)?.stop(connectionId, userId, room)
  }),
  typing: registerTyping,
  userMessage: registerUserMessage,
  agent: registerAgent,
  clientError: registerClientError
})

/**
 * Register every built-in handler that `builtins` does not switch off.
 * Each is an ordinary route, so an app replaces one with `override: true`:
 *
 * @example
 * app.wsRouter.on('user_message', { schema, override: true }, myHandler)
 */
export function registerBuiltins (router: BuiltinHost): void {
  const enabled = router.config.builtins
  for (const name of Object.keys(builtinRegistrars) as BuiltinName[]) {
    if (enabled[name] !== false) builtinRegistrars[name](router)
  }
}

export { registerAgent, registerClientError, registerConnection, registerRooms, registerTyping, registerUserMessage }
