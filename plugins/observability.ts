import type { FastifyInstance } from 'fastify'
import { FST_WSR_METRICS_UNAVAILABLE } from '../lib/errors.js'
import { liveness, readiness } from '../lib/health.js'
import { createMetrics, loadPromClient, type MetricsConfig } from '../lib/metrics.js'
import type { HealthConfig } from '../lib/options.js'
import type { Engine } from '../lib/engine.js'
import { requirePeer } from '../lib/peer-dependency.js'
import { Tracing, type TracingConfig } from '../lib/tracing.js'

/**
 * Wiring of the `metrics` and `health` options: prom-client is imported here
 * only when `metrics` is set; the routes are the app's ordinary routes.
 */

export async function registerMetrics (fastify: FastifyInstance, router: Engine, config: MetricsConfig): Promise<void> {
  const client = await loadPromClient()
  if (client === undefined) throw new FST_WSR_METRICS_UNAVAILABLE()
  const metrics = createMetrics(client, config, {
    route: router.config.path,
    stats: router.stats,
    broker: () => router.adapter.status?.() ?? null,
    resume: () => router.delivery?.snapshot() ?? null
  })
  router.observer = metrics.observer
  fastify.addHook('onClose', async () => {
    router.observer = null
    metrics.close()
  })
  if (config.path === false) return
  const registry = metrics.registry
  fastify.get(config.path, async (_request, reply) => {
    const text = await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })
}

/** `tracing`: the OpenTelemetry API is loaded here, only when the option is set. */
export function registerTracing (router: Engine, config: TracingConfig): void {
  const api = requirePeer<typeof import('@opentelemetry/api')>('@opentelemetry/api', 'tracing')
  router.tracing = new Tracing(api, config)
}

export function registerHealth (fastify: FastifyInstance, router: Engine, config: HealthConfig): void {
  if (config.livenessPath !== false) {
    fastify.get(config.livenessPath, async (_request, reply) => {
      const answer = liveness(router.connections.size)
      return reply.code(answer.statusCode).send(answer.body)
    })
  }
  if (config.readinessPath !== false) {
    fastify.get(config.readinessPath, async (_request, reply) => {
      const answer = readiness({ closing: router.closing, connections: router.connections.size, broker: router.adapter.status?.() ?? null })
      return reply.code(answer.statusCode).send(answer.body)
    })
  }
}
