/**
 * The environment for a child process a test spawns (a server instance, a
 * script): tap's own variables and its coverage hook in NODE_OPTIONS are
 * left out, so a child killed mid-way does not feed partial coverage of the
 * same files (transpiled by another loader) into the parent's report.
 */
export function childEnv (extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key === 'TAP' || key.startsWith('TAP_') || key.startsWith('_TAPJS_')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}
