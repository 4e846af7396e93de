import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'

/**
 * A real Redis for the scale-out tests: `REDIS_URL` when set, else a
 * `redis-server` started here on a spare port, in a temporary directory,
 * with persistence off. Without either, the tests are skipped with the
 * reason, unless `WSR_REQUIRE_REDIS=1` (set by .ci/run) makes that a failure.
 */

export interface TestRedis {
  url: string
  port: number
  /** Stop the server (simulated outage); no-op for an external REDIS_URL. */
  stop: () => Promise<void>
  /** Start it again on the same port. */
  start: () => Promise<void>
  close: () => Promise<void>
}

export function redisServerPath (): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

/** Why the Redis tests cannot run here, or undefined when they can. */
export function redisUnavailableReason (): string | undefined {
  if (process.env.REDIS_URL !== undefined && process.env.REDIS_URL !== '') return undefined
  if (redisServerPath() !== undefined) return undefined
  return 'no redis-server binary and no REDIS_URL (apt-get install -y redis-server, or set REDIS_URL)'
}

export function mustRunRedisTests (): boolean {
  return process.env.WSR_REQUIRE_REDIS === '1'
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port
      server.close(() => resolve(port))
    })
  })
}

export async function waitForPort (port: number, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`redis-server did not listen on ${port}`)
}

export async function startRedis (): Promise<TestRedis> {
  const external = process.env.REDIS_URL
  if (external !== undefined && external !== '') {
    const port = Number(new URL(external).port || 6379)
    return { url: external, port, stop: async () => {}, start: async () => {}, close: async () => {} }
  }
  const binary = redisServerPath()
  if (binary === undefined) throw new Error('redis-server not found')
  const dir = mkdtempSync(join(tmpdir(), 'wsr-redis-'))
  const port = await freePort()
  let child: ChildProcess | null = null
  const start = async (): Promise<void> => {
    child = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no'], { stdio: 'ignore' })
    await waitForPort(port)
  }
  const stop = async (): Promise<void> => {
    const running = child
    child = null
    if (running === null || running.exitCode !== null) return
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve())
      running.kill('SIGKILL')
    })
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop,
    start,
    close: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
