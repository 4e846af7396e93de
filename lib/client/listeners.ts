/**
 * Listeners by name. A listener that throws does not stop the others: its
 * error goes to `onListenerError` (the client's `listener_error` hook), so a
 * bug in one listener is reported, never swallowed, and never breaks the
 * frame loop.
 */
export type Listener = (...args: never[]) => void

export class Listeners {
  private readonly byName = new Map<string, Set<Listener>>()

  constructor (private readonly onListenerError: (err: unknown, name: string) => void) {}

  on (name: string, listener: Listener): () => void {
    let set = this.byName.get(name)
    if (set === undefined) {
      set = new Set()
      this.byName.set(name, set)
    }
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.byName.get(name) === set) this.byName.delete(name)
    }
  }

  has (name: string): boolean {
    return this.byName.has(name)
  }

  emit (name: string, ...args: unknown[]): void {
    const set = this.byName.get(name)
    if (set === undefined) return
    for (const listener of [...set]) {
      try {
        (listener as (...a: unknown[]) => void)(...args)
      } catch (err) {
        this.onListenerError(err, name)
      }
    }
  }
}
