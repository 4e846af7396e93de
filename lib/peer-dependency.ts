import { createRequire } from 'node:module'
import { FST_WSR_MISSING_PEER } from './errors.js'

// Resolved from this file, so a peer is found where npm installs it: next to this package.
const requireFromHere = createRequire(import.meta.url)

/**
 * Load an optional peer dependency synchronously (a static import of a
 * missing package fails while the module graph links, before any code can
 * explain why; a dynamic import would need top-level await, which breaks
 * `require()` of the entry). Throws `FST_WSR_MISSING_PEER` naming the
 * package to install when it is absent; any other load error is rethrown.
 */
export function requirePeer<T> (name: string, entryPoint: string): T {
  try {
    return requireFromHere(name) as T
  } catch (err) {
    if ((err as { code?: unknown }).code === 'MODULE_NOT_FOUND' && String((err as Error).message).includes(`'${name}'`)) {
      throw new FST_WSR_MISSING_PEER(entryPoint, name, name)
    }
    throw err
  }
}
