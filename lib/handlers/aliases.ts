import type { BuiltinHost } from '../builtin-host.js'

/**
 * Client → server type names of the system this router replaces. Only
 * client message types are aliased: a client sending a server event name
 * (`agent_started`, `message_ack`, ...) meets the unknown-type policy.
 */
export const legacyAliases: Readonly<Record<string, string>> = Object.freeze({
  chat: 'user_message',
  chat_message: 'user_message',
  message: 'user_message',
  user: 'user_message',
  user_input: 'user_message',
  user_typing: 'typing_started',
  agent: 'start_agent',
  agent_request: 'start_agent',
  error_message: 'client_error'
})

export function registerLegacyAliases (router: BuiltinHost): void {
  for (const [alias, target] of Object.entries(legacyAliases)) router.alias(alias, target)
}
