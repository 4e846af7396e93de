/**
 * The browser tests' tools: Debian's Chromium through playwright-core (never
 * a downloaded browser), pages that fail the test on any page or console
 * error, and the example server as a real process (`npm start`'s command).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { untrackedNode } from './child-env.js'

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser tests cannot run here, or `undefined` when they can. Under
 * CI (`CI=true`) or with `WSR_REQUIRE_BROWSER=1` a missing browser is a
 * failure, so the caller throws instead of skipping.
 */
export function browserMissing (): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined
  return `no Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`
}

export function browserRequired (): boolean {
  return process.env.CI === 'true' || process.env.WSR_REQUIRE_BROWSER === '1'
}

export async function launchBrowser (): Promise<Browser> {
  // Root in a container: no sandbox; /dev/shm is small there.
  return await chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
}

/** A page whose page errors and console errors are collected; some may be declared expected. */
export interface WatchedPage {
  page: Page
  context: BrowserContext
  /** Console errors and page errors not declared expected. */
  readonly errors: string[]
  /** Console errors that matched an expectation, for the test to count. */
  readonly expected: string[]
  /**
   * Accept console errors matching `pattern` until the returned function is
   * called: the browser's own lines for a refused connection while the test
   * has stopped the server on purpose, say.
   */
  expect: (pattern: RegExp) => () => void
}

export async function watchedPage (browser: Browser, viewport: { width: number, height: number }): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport })
  const page = await context.newPage()
  const patterns = new Set<RegExp>()
  const watched: WatchedPage = {
    page,
    context,
    errors: [],
    expected: [],
    expect: (pattern) => {
      patterns.add(pattern)
      return () => { patterns.delete(pattern) }
    }
  }
  page.on('pageerror', (err) => { watched.errors.push(`pageerror: ${err.message}`) })
  page.on('console', (message) => {
    if (message.type() !== 'error') return
    const text = `${message.text()} (${message.location().url})`
    if ([...patterns].some((pattern) => pattern.test(text))) watched.expected.push(text)
    else watched.errors.push(`console.error: ${text}`)
  })
  return watched
}

/** A port that was free a moment ago: the example must come back on the same one after a restart. */
export async function sparePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

const root = fileURLToPath(new URL('../..', import.meta.url))
const tsxCli = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url))

export interface ExampleProcess {
  proc: ChildProcess
  port: number
  /** Everything it printed so far (JSON log lines). */
  output: () => string
  /** SIGTERM, and wait for the exit (the example closes its clients with 1001 first). */
  stop: () => Promise<void>
}

/** `npm start`'s command (`tsx examples/server.ts`) on `port`, in development; `env` adds to its environment. */
export async function startExample (port: number, env: Record<string, string> = {}): Promise<ExampleProcess> {
  const node = untrackedNode([tsxCli, 'examples/server.ts'], { PORT: String(port), HOST: '127.0.0.1', NODE_ENV: 'development', LOG_LEVEL: 'info', ...env })
  const proc = spawn(node.command, node.args, { cwd: root, env: node.env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString()
      if (output.includes('Server listening at')) resolve()
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    exited.then(() => { reject(new Error(`example exited early: ${output}`)) }, reject)
  })
  return {
    proc,
    port,
    output: () => output,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
    }
  }
}
