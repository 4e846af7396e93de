import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { freePort, redisServerPath, waitForPort } from './redis.js'

/**
 * A real Redis Cluster for the cluster tests: 3 masters with 1 replica each,
 * started here with `redis-server --cluster-enabled yes` on spare ports (the
 * cluster bus on spare ports too, through `cluster-port`), in a temporary
 * directory, persistence off, then joined with `redis-cli --cluster create`.
 * `REDIS_CLUSTER_NODES` (comma-separated host:port) uses an external cluster
 * instead; the failover and resharding steps then skip.
 */

const run = promisify(execFile)

export interface ClusterNodeInfo {
  id: string
  port: number
  role: 'master' | 'replica'
  /** The master's id, for a replica. */
  masterId: string | null
  /** Slot ranges [first, last] a master serves. */
  slots: Array<[number, number]>
  failed: boolean
}

export interface TestCluster {
  /** host:port of every node, masters and replicas. */
  seeds: string[]
  /** Whether this helper started the cluster (and may kill or reshard it). */
  local: boolean
  /** `redis-cli` against one node; resolves with its output. */
  cli: (port: number, ...args: string[]) => Promise<string>
  /** The nodes as one live node sees them. */
  nodes: () => Promise<ClusterNodeInfo[]>
  /** The master that serves a slot. */
  masterOf: (slot: number) => Promise<ClusterNodeInfo>
  /** The hash slot of a key or channel name. */
  keyslot: (name: string) => Promise<number>
  /** SIGKILL one node (a crash: no clean-up, no failover handshake). */
  kill: (port: number) => Promise<void>
  /** Move one slot, with its keys, from its master to another (as `redis-cli --cluster reshard` does). */
  moveSlot: (slot: number, toPort: number) => Promise<void>
  /** Resolves once every live node says `cluster_state:ok` and agrees on who serves every slot. */
  waitHealthy: (timeoutMs?: number) => Promise<void>
  close: () => Promise<void>
}

/** Why the cluster tests cannot run here, or undefined when they can. */
export function clusterUnavailableReason (): string | undefined {
  const external = process.env.REDIS_CLUSTER_NODES
  if ((external === undefined || external === '') && redisServerPath() === undefined) {
    return 'no redis-server binary and no REDIS_CLUSTER_NODES (apt-get install -y redis-server, or set REDIS_CLUSTER_NODES)'
  }
  try {
    execFileSync('sh', ['-c', 'command -v redis-cli'], { stdio: 'ignore' })
    return undefined
  } catch {
    return 'no redis-cli binary (apt-get install -y redis-tools)'
  }
}

export async function startRedisCluster (): Promise<TestCluster> {
  const external = process.env.REDIS_CLUSTER_NODES
  if (external !== undefined && external !== '') return externalCluster(external.split(','))
  const binary = redisServerPath()
  if (binary === undefined) throw new Error('redis-server not found')
  // A spare port is bound by redis-server a moment after it was found free, so
  // another process may take it in between: then start again on fresh ports.
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startLocalCluster(binary)
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}

async function startLocalCluster (binary: string): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'wsr-cluster-'))
  const ports: number[] = []
  const busPorts: number[] = []
  const taken = new Set<number>()
  while (ports.length < 6) {
    const port = await freePort()
    const bus = await freePort()
    if (taken.has(port) || taken.has(bus) || port === bus) continue
    taken.add(port)
    taken.add(bus)
    ports.push(port)
    busPorts.push(bus)
  }
  const children = new Map<number, ChildProcess>()
  const cluster = clusterApi(ports.map((p) => `127.0.0.1:${p}`), true, makeCli(), children)
  const killAll = cluster.close
  cluster.close = async () => {
    await killAll()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    await Promise.all(ports.map(async (port, index) => {
      const child = spawn(binary, [
        '--port', String(port),
        '--cluster-port', String(busPorts[index]),
        '--bind', '127.0.0.1',
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`),
        // Fast failure detection: a dead master is replaced within a few seconds.
        '--cluster-node-timeout', '2000',
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--protected-mode', 'no'
      ], { stdio: 'ignore' })
      children.set(port, child)
      await waitForPort(port)
    }))
    await run('redis-cli', ['--cluster', 'create', ...cluster.seeds, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 })
    await cluster.waitHealthy(30_000)
    await waitForReplicas(cluster, 3, 30_000)
  } catch (err) {
    await cluster.close()
    throw err
  }
  return cluster
}

/** Every replica attached to its master and in sync, so a failover can happen. */
async function waitForReplicas (cluster: TestCluster, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (Date.now() < deadline) {
    const replicas = (await cluster.nodes()).filter((n) => n.role === 'replica')
    const links = await Promise.all(replicas.map(async (r) => (await cluster.cli(r.port, 'info', 'replication')).includes('master_link_status:up')))
    last = `${replicas.length} replicas, ${links.filter(Boolean).length} in sync`
    if (replicas.length === count && links.every(Boolean)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`replicas not in sync within ${timeoutMs} ms: ${last}`)
}

function makeCli (): (port: number, ...args: string[]) => Promise<string> {
  return async (port, ...args) => (await run('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 })).stdout
}

function externalCluster (seeds: string[]): TestCluster {
  return clusterApi(seeds, false, makeCli(), new Map())
}

function parseNodes (text: string): ClusterNodeInfo[] {
  const nodes: ClusterNodeInfo[] = []
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ')
    if (fields.length < 8) continue
    const [id, address, flags, master] = fields as [string, string, string, string]
    const port = Number(address.split('@')[0]?.split(':')[1])
    const slots: Array<[number, number]> = []
    for (const range of fields.slice(8)) {
      if (range.startsWith('[')) continue // a slot being migrated or imported
      const [first, last] = range.split('-').map(Number) as [number, number | undefined]
      slots.push([first, last ?? first])
    }
    nodes.push({
      id,
      port,
      role: flags.includes('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master,
      slots,
      failed: flags.split(',').some((flag) => flag === 'fail' || flag === 'fail?')
    })
  }
  return nodes
}

function clusterApi (seeds: string[], local: boolean, cli: TestCluster['cli'], children: Map<number, ChildProcess>): TestCluster {
  const ports = seeds.map((s) => Number(s.split(':')[1]))
  const alive = (): number[] => local ? ports.filter((p) => children.get(p)?.exitCode === null && children.get(p)?.signalCode === null) : ports

  const nodes = async (): Promise<ClusterNodeInfo[]> => {
    let lastError: unknown
    for (const port of alive()) {
      try {
        return parseNodes(await cli(port, 'cluster', 'nodes'))
      } catch (err) { lastError = err }
    }
    throw lastError instanceof Error ? lastError : new Error('no cluster node answered')
  }

  const masterOf = async (slot: number): Promise<ClusterNodeInfo> => {
    const master = (await nodes()).find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b))
    if (master === undefined) throw new Error(`no master serves slot ${slot}`)
    return master
  }

  const keyslot = async (name: string): Promise<number> => Number((await cli(alive()[0] as number, 'cluster', 'keyslot', name)).trim())

  const waitHealthy = async (timeoutMs = 20_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    let last = ''
    while (Date.now() < deadline) {
      try {
        const views = await Promise.all(alive().map(async (port) => {
          const info = await cli(port, 'cluster', 'info')
          const owners = parseNodes(await cli(port, 'cluster', 'nodes'))
            .filter((n) => n.role === 'master' && n.slots.length > 0)
            .map((n) => `${n.id}:${JSON.stringify(n.slots)}`).sort().join(' ')
          return { ok: info.includes('cluster_state:ok'), owners }
        }))
        last = JSON.stringify(views)
        if (views.every((v) => v.ok) && new Set(views.map((v) => v.owners)).size === 1) return
      } catch (err) { last = String(err) }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`cluster not healthy within ${timeoutMs} ms: ${last}`)
  }

  const kill = async (port: number): Promise<void> => {
    const child = children.get(port)
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve())
      child.kill('SIGKILL')
    })
  }

  const moveSlot = async (slot: number, toPort: number): Promise<void> => {
    const all = await nodes()
    const source = all.find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b))
    const target = all.find((n) => n.port === toPort)
    if (source === undefined || target === undefined) throw new Error(`cannot move slot ${slot} to ${toPort}`)
    if (source.id === target.id) return
    // The order redis-cli --cluster reshard uses: importing on the target first.
    await cli(target.port, 'cluster', 'setslot', String(slot), 'importing', source.id)
    await cli(source.port, 'cluster', 'setslot', String(slot), 'migrating', target.id)
    for (;;) {
      const keys = (await cli(source.port, 'cluster', 'getkeysinslot', String(slot), '100')).split('\n').filter((k) => k !== '')
      if (keys.length === 0) break
      await cli(source.port, 'migrate', '127.0.0.1', String(target.port), '', '0', '5000', 'keys', ...keys)
    }
    await cli(target.port, 'cluster', 'setslot', String(slot), 'node', target.id)
    await cli(source.port, 'cluster', 'setslot', String(slot), 'node', target.id)
    for (const other of all.filter((n) => n.role === 'master' && n.id !== source.id && n.id !== target.id && !n.failed)) {
      await cli(other.port, 'cluster', 'setslot', String(slot), 'node', target.id).catch(() => '')
    }
  }

  return {
    seeds,
    local,
    cli,
    nodes,
    masterOf,
    keyslot,
    kill,
    moveSlot,
    waitHealthy,
    close: async () => {
      await Promise.all([...children.keys()].map(kill))
    }
  }
}
