/**
 * The soak's server process: the hostile app's three profiles
 * (test/helpers/hostile-app.ts) on spare ports, answering the soak
 * (bench/soak.ts) over IPC for its memory, event-loop delay, registries and
 * shutdown. Run by the soak as `node --expose-gc --import tsx
 * bench/soak/server.ts`; prints nothing, sends `{ ready, ports }` once
 * listening. Environment: SOAK_LOG (file for log lines at `error` and up),
 * SOAK_PROFILES (comma-separated, default all three), SOAK_OPTIONS (JSON
 * router options laid over the profiles'), SOAK_FASTIFY (JSON Fastify
 * options, e.g. `pluginTimeout`).
 *
 * An uncaught exception or unhandled rejection is counted and reported,
 * not left to end the process: the soak asserts that there were none.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import type { FastifyInstance } from 'fastify'
import type { WsRouterOptions } from '../../lib/index.js'
import { buildHostileApp, registries, type HostileProfile } from '../../test/helpers/hostile-app.js'
import { heartbeatTick } from '../../test/helpers/internals.js'

const faults = { uncaught: 0, unhandled: 0, first: [] as string[] }
process.on('uncaughtException', (err) => {
  faults.uncaught++
  if (faults.first.length < 5) faults.first.push(`uncaught: ${err.stack ?? String(err)}`)
})
process.on('unhandledRejection', (reason) => {
  faults.unhandled++
  if (faults.first.length < 5) faults.first.push(`unhandled: ${(reason as Error)?.stack ?? String(reason)}`)
})

const gc = (globalThis as { gc?: () => void }).gc
const eld = monitorEventLoopDelay({ resolution: 1 })
eld.enable()

const profiles = (process.env.SOAK_PROFILES ?? 'default,fuzz,rpc').split(',') as HostileProfile[]
const logger = process.env.SOAK_LOG === undefined ? false : { level: 'error', file: process.env.SOAK_LOG }
const apps = new Map<HostileProfile, FastifyInstance>()
const ports: Record<string, number> = {}
const extra = JSON.parse(process.env.SOAK_OPTIONS ?? '{}') as WsRouterOptions
const fastifyOptions = JSON.parse(process.env.SOAK_FASTIFY ?? '{}') as Record<string, unknown>
const blob = 'z'.repeat(256 * 1024)
for (const profile of profiles) {
  const app = await buildHostileApp(profile, logger, extra, fastifyOptions)
  // For the shutdown phase: a client that stopped reading asks to have its
  // socket filled until bytes wait in the server's own buffer, past what
  // the kernel takes, so that its close frame cannot get through.
  app.wsRouter.on('fill_me', async (_payload, ctx) => {
    for (let i = 0; i < 256 && (app.wsRouter.connectionStatus(ctx.connectionId)?.bufferedAmount ?? Infinity) < 512 * 1024; i++) {
      ctx.send('fill', { blob }).catch(() => {})
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  ports[profile] = typeof address === 'object' && address !== null ? address.port : 0
  apps.set(profile, app)
}

function memory (): NodeJS.MemoryUsage {
  return process.memoryUsage()
}

function collect (): NodeJS.MemoryUsage {
  for (let i = 0; i < 3; i++) gc?.()
  return memory()
}

type Command =
  | { cmd: 'stats' }
  | { cmd: 'gc' }
  | { cmd: 'eld-reset' }
  | { cmd: 'heartbeat', profile: HostileProfile, ticks: number }
  | { cmd: 'close', profile: HostileProfile }
  | { cmd: 'buffered', profile: HostileProfile, ids: string[], bytes: number }
  | { cmd: 'exit' }

async function handle (command: Command): Promise<unknown> {
  switch (command.cmd) {
    case 'stats': {
      const routers: Record<string, unknown> = {}
      for (const [profile, app] of apps) routers[profile] = { registries: registries(app), stats: app.wsRouter.getStats() }
      return { memory: memory(), cpu: process.cpuUsage(), faults, routers }
    }
    case 'gc':
      return { memory: collect(), gc: gc !== undefined }
    case 'eld-reset': {
      const summary = { p50: eld.percentile(50) / 1e6, p99: eld.percentile(99) / 1e6, max: eld.max / 1e6, count: eld.count }
      eld.reset()
      return summary
    }
    case 'heartbeat': {
      // One heartbeat pass is synchronous: a loop over every connection that pings it.
      const router = (apps.get(command.profile) as FastifyInstance).wsRouter
      // Wall time counts the time the process waited for a core on a busy
      // machine; the process's CPU time during the pass is the cost itself.
      const times: number[] = []
      const cpuTimes: number[] = []
      for (let i = 0; i < command.ticks; i++) {
        const cpuBefore = process.cpuUsage()
        const started = performance.now()
        heartbeatTick(router, Date.now())
        times.push(performance.now() - started)
        const cpu = process.cpuUsage(cpuBefore)
        cpuTimes.push((cpu.user + cpu.system) / 1000)
        await new Promise((resolve) => setTimeout(resolve, 2000))
      }
      return { tickMs: times, tickCpuMs: cpuTimes, connections: router.connectionCount }
    }
    case 'buffered': {
      // How many of these connections have more than `bytes` waiting in the server's own buffer.
      const router = (apps.get(command.profile) as FastifyInstance).wsRouter
      return command.ids.filter((id) => (router.connectionStatus(id)?.bufferedAmount ?? 0) > command.bytes).length
    }
    case 'close': {
      const app = apps.get(command.profile) as FastifyInstance
      const started = performance.now()
      try {
        await app.close()
        return { closeMs: performance.now() - started, error: null }
      } catch (err) {
        return { closeMs: performance.now() - started, error: `${(err as { code?: string }).code ?? ''} ${(err as Error).message}` }
      }
    }
    case 'exit':
      setImmediate(() => process.exit(0))
      return {}
  }
}

process.on('message', (message: { seq: number, command: Command }) => {
  handle(message.command).then(
    (result) => process.send?.({ seq: message.seq, result }),
    (err: unknown) => process.send?.({ seq: message.seq, error: (err as Error).stack ?? String(err) })
  )
})
process.send?.({ ready: true, ports, pid: process.pid })
