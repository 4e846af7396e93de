/**
 * Targets (7): the plugin of targets (4) and (5), built from an earlier
 * commit (`npm run bench -- --baseline DIR`, DIR holding that commit's tsc
 * output), run beside the current build in the same run, so that before and
 * after meet the same machine state, round by round.
 */
const baseline = process.env.WSR_BENCH_BASELINE
if (baseline === undefined || baseline === '') throw new Error('plugin-baseline needs --baseline DIR')
process.env.WSR_BENCH_PLUGIN = baseline
// Imported after the variable is set: plugin-app.ts picks its build when it loads.
const { startPlugin } = await import('./plugin-app.js')
await startPlugin('plugin-baseline', { rateLimit: false })
