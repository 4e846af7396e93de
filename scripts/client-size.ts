// Bundle size of the browser client: `npx tsx scripts/client-size.ts`.
// Bundles lib/client/index.ts (and, separately, with the validation entry)
// with esbuild for the browser, minified, and prints raw, min and
// min+gzip bytes. A Node built-in anywhere in the graph fails the build.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Bundle `contents` (an ES module importing from lib/client) and measure it. */
export async function measure (contents: string): Promise<{ code: string, minBytes: number, gzipBytes: number }> {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: 'ts', sourcefile: 'entry.ts' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent'
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild wrote nothing')
  const code = output.contents
  return { code: Buffer.from(code).toString(), minBytes: code.byteLength, gzipBytes: gzipSync(code, { level: 9 }).byteLength }
}

/** The client without validation: what the 6 KB budget is about. */
export const CLIENT_BUDGET_BYTES = 6 * 1024
export const CLIENT_ENTRY = "export * from './lib/client/index.ts'"
export const VALIDATE_ENTRY = "export * from './lib/client/index.ts'\nexport * from './lib/client/validate.ts'"

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const client = await measure(CLIENT_ENTRY)
  const withValidation = await measure(VALIDATE_ENTRY)
  console.log(`fastify-ws-router/client: ${client.minBytes} B min, ${client.gzipBytes} B min+gzip (budget ${CLIENT_BUDGET_BYTES} B)`)
  console.log(`with fastify-ws-router/client/validate: ${withValidation.minBytes} B min, ${withValidation.gzipBytes} B min+gzip`)
}
