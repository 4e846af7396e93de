/**
 * The harness side of the load-generator workers: start them (through tsx's
 * loader, which worker threads do not inherit), send commands, await replies.
 */
import { Worker } from 'node:worker_threads'
import type { WorkerCommand, WorkerReply } from './messages.js'

/** A command without its sequence number; the pool numbers them. */
export type Command = WorkerCommand extends infer C ? C extends WorkerCommand ? Omit<C, 'seq'> : never : never

interface Pending {
  resolve: (reply: WorkerReply) => void
  reject: (err: Error) => void
}

export class LoadPool {
  private readonly workers: Worker[] = []
  private readonly pending = new Map<number, Pending>()
  private seq = 0

  constructor (size: number) {
    const loader = import.meta.resolve('tsx/esm/api')
    const entry = new URL('./loadgen.ts', import.meta.url).href
    const bootstrap = `import(${JSON.stringify(loader)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}) })`
    for (let i = 0; i < size; i++) {
      const worker = new Worker(bootstrap, { eval: true })
      worker.on('message', (reply: WorkerReply) => {
        const waiter = this.pending.get(reply.seq)
        if (waiter === undefined) return
        this.pending.delete(reply.seq)
        waiter.resolve(reply)
      })
      worker.on('error', (err) => this.failAll(err))
      worker.on('exit', (code) => { if (code !== 0) this.failAll(new Error(`load worker exited with ${code}`)) })
      this.workers.push(worker)
    }
  }

  get size (): number {
    return this.workers.length
  }

  private failAll (err: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(err)
    this.pending.clear()
  }

  /** Send one command to one worker. */
  call<R extends WorkerReply>(index: number, command: Command): Promise<R> {
    const worker = this.workers[index]
    if (worker === undefined) throw new Error(`no worker ${index}`)
    const seq = ++this.seq
    return new Promise<R>((resolve, reject) => {
      this.pending.set(seq, { resolve: resolve as (reply: WorkerReply) => void, reject })
      worker.postMessage({ ...command, seq })
    })
  }

  /** The same command (or one built per worker) to every worker. */
  all<R extends WorkerReply>(command: Command | ((index: number) => Command)): Promise<R[]> {
    return Promise.all(this.workers.map((_, index) => this.call<R>(index, typeof command === 'function' ? command(index) : command)))
  }

  async close (): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()))
  }
}

/** Split `total` into `parts` nearly equal integers (the first ones get the remainder). */
export function split (total: number, parts: number): number[] {
  const base = Math.floor(total / parts)
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0))
}
