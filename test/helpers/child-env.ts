/**
 * Run node in a child process that tap's coverage tracker does not follow.
 *
 * @tapjs/processinfo wraps child_process so that every node child inherits
 * its coverage hook through NODE_OPTIONS. Children here run lib/ through
 * another loader (tsx); merged with the parent's coverage under other line
 * maps, their data corrupts the report. `env -u NODE_OPTIONS` starts node
 * without the hook; tap's own variables are left out as well.
 */
export function untrackedNode (args: string[], extra: Record<string, string | undefined> = {}): { command: string, args: string[], env: NodeJS.ProcessEnv } {
  return untrackedCommand(process.execPath, args, extra)
}

/**
 * The same for any command that starts node (npm, npx, tsc). npm's script
 * variables are left out too: a child npm that inherits
 * `npm_config_local_prefix` would install into this repository instead of
 * its own working directory.
 */
export function untrackedCommand (command: string, args: string[], extra: Record<string, string | undefined> = {}): { command: string, args: string[], env: NodeJS.ProcessEnv } {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key === 'TAP' || key.startsWith('TAP_') || key.startsWith('_TAPJS_')) continue
    if (key === 'npm_config_local_prefix' || key === 'INIT_CWD' || key.startsWith('npm_package_') || key.startsWith('npm_lifecycle_')) continue
    env[key] = value
  }
  return { command: 'env', args: ['-u', 'NODE_OPTIONS', command, ...args], env: { ...env, ...extra } }
}
