/**
 * The connection badge: what the client's `state` events say, in words,
 * with a countdown to the next attempt while reconnecting.
 */
import type { ClientState, StateInfo } from '../../lib/client/index.js'

/**
 * What the badge can show. `resumed` and `gap` are for resumable delivery:
 * main.ts calls `showResume` on the client's `resumed` event, with the
 * number of frames replayed, and `gap: true` when some were lost.
 */
export type BadgeState = ClientState | 'signed-out' | 'resumed' | 'gap'

export class ConnectionBadge {
  private countdown: ReturnType<typeof setInterval> | undefined

  constructor (private readonly element: HTMLElement) {}

  /** Follow a client state change. */
  show (state: ClientState, info: StateInfo): void {
    this.stopCountdown()
    if (state === 'reconnecting') {
      const retryAt = Date.now() + (info.delayMs ?? 0)
      const why = info.reason !== undefined && info.reason !== '' ? `${info.reason}, ` : ''
      const render = (): void => {
        const seconds = Math.max(0, (retryAt - Date.now()) / 1000)
        this.render('reconnecting', `reconnecting in ${seconds.toFixed(1)} s (${why}close ${info.code ?? '?'}, attempt ${info.attempt ?? 1})`)
        if (seconds === 0) this.stopCountdown()
      }
      render()
      this.countdown = setInterval(render, 100)
      return
    }
    if (state === 'closed') this.render('closed', `closed${info.reason !== undefined && info.reason !== '' ? `: ${info.reason}` : ''}`)
    else this.render(state, state)
  }

  /** A resumed session (see `BadgeState`); the next state change replaces it. */
  showResume (result: { replayed: number, gap: boolean }): void {
    this.stopCountdown()
    if (result.gap) this.render('gap', 'reconnected: some messages were missed')
    else this.render('resumed', `resumed (${result.replayed} replayed)`)
  }

  signedOut (): void {
    this.stopCountdown()
    this.render('signed-out', 'signed out')
  }

  private render (state: BadgeState, text: string): void {
    this.element.dataset.state = state
    this.element.textContent = text
  }

  private stopCountdown (): void {
    if (this.countdown !== undefined) clearInterval(this.countdown)
    this.countdown = undefined
  }
}
