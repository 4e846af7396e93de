import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort, waitForPort } from './redis.js'

/**
 * A real Prometheus (Debian's `prometheus`) started by the test, scraping
 * the given targets every second, its TSDB in a temporary directory. Missing
 * binaries skip the tests with the reason, unless `WSR_REQUIRE_PROMETHEUS=1`
 * (set by .ci/run) makes that a failure.
 */

export interface TestPrometheus {
  /** Instant query through the HTTP API: the samples' values with their labels. */
  query: (promql: string) => Promise<Array<{ metric: Record<string, string>, value: number }>>
  close: () => Promise<void>
}

function which (name: string): string | undefined {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

export function prometheusUnavailableReason (): string | undefined {
  if (which('prometheus') !== undefined && which('promtool') !== undefined) return undefined
  return 'no prometheus/promtool binary (apt-get install -y prometheus)'
}

export function mustRunPrometheusTests (): boolean {
  return process.env.WSR_REQUIRE_PROMETHEUS === '1'
}

export async function startPrometheus (targets: string[]): Promise<TestPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'wsr-prometheus-'))
  const port = await freePort()
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: wsr-test',
    '    static_configs:',
    `      - targets: [${targets.map((target) => `'${target}'`).join(', ')}]`,
    ''
  ].join('\n'))
  const child: ChildProcess = spawn('prometheus', [
    `--config.file=${config}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn'
  ], { stdio: 'ignore' })
  await waitForPort(port, 15_000)
  return {
    async query (promql) {
      const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`)
      const body = await response.json() as { status: string, data?: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }
      if (body.status !== 'success' || body.data === undefined) throw new Error(`query failed: ${JSON.stringify(body)}`)
      return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }))
    },
    async close () {
      if (child.exitCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve())
          child.kill('SIGTERM')
        })
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
