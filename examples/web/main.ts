/**
 * The demo page: sign-in, rooms with members, chat with delivery states and
 * typing, an agent panel, a connection badge that tells a resumed session
 * (and what it missed) from a fresh one. Plain DOM over the project's client
 * SDK (lib/client); bundled by examples/demo-web.ts.
 */
import { createClient, isClientError, type AgentRun, type Client } from '../../lib/client/index.js'
import { ConnectionBadge } from './badge.js'
import { checkedToken, forgetToken, SessionRefused, signIn, storedToken } from './session.js'

/** Members are asked for again this often: the router sends no presence frames (yet). */
const MEMBERS_REFRESH_MS = 3000
/** Typing stops by itself after this long without a keystroke (the server expires it after 5 s anyway). */
const TYPING_IDLE_MS = 2500
const MESSAGE_TIMEOUT_MS = 15_000

function element<T extends HTMLElement> (id: string): T {
  const found = document.getElementById(id)
  if (found === null) throw new Error(`#${id} is missing from index.html`)
  return found as T
}

const ui = {
  badge: new ConnectionBadge(element('badge')),
  whoami: element<HTMLParagraphElement>('whoami'),
  signOut: element<HTMLButtonElement>('sign-out'),
  signInSection: element<HTMLElement>('sign-in'),
  signInForm: element<HTMLFormElement>('sign-in-form'),
  name: element<HTMLInputElement>('name'),
  signInError: element<HTMLParagraphElement>('sign-in-error'),
  app: element<HTMLDivElement>('app'),
  joinForm: element<HTMLFormElement>('join-form'),
  roomName: element<HTMLInputElement>('room-name'),
  roomList: element<HTMLUListElement>('room-list'),
  members: element<HTMLUListElement>('members'),
  activeRoom: element<HTMLSpanElement>('active-room'),
  messages: element<HTMLOListElement>('messages'),
  typing: element<HTMLParagraphElement>('typing'),
  messageForm: element<HTMLFormElement>('message-form'),
  messageText: element<HTMLInputElement>('message-text'),
  agentForm: element<HTMLFormElement>('agent-form'),
  agentInput: element<HTMLInputElement>('agent-input'),
  agentStop: element<HTMLButtonElement>('agent-stop'),
  agentEvents: element<HTMLOListElement>('agent-events'),
  agentAnswer: element<HTMLParagraphElement>('agent-answer')
}

interface Session {
  client: Client
  activeRoom: string | null
  /** room → users typing there (other than this user). */
  typing: Map<string, Set<string>>
  typingSentFor: string | null
  typingIdle: ReturnType<typeof setTimeout> | undefined
  membersTimer: ReturnType<typeof setInterval>
  run: AgentRun | null
}

let session: Session | null = null

function make<K extends keyof HTMLElementTagNameMap> (tag: K, text = '', className = ''): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  node.textContent = text
  if (className !== '') node.className = className
  return node
}

function reasonOf (err: unknown): string {
  if (isClientError(err)) return err.code
  return err instanceof Error ? err.message : String(err)
}

// ---- sign-in ---------------------------------------------------------------

function showSignIn (message: string): void {
  ui.app.hidden = true
  ui.signOut.hidden = true
  ui.whoami.hidden = true
  ui.signInSection.hidden = false
  ui.signInError.textContent = message
  ui.badge.signedOut()
  ui.name.focus()
}

function endSession (message: string): void {
  const ending = session
  session = null
  if (ending !== null) {
    clearInterval(ending.membersTimer)
    clearTimeout(ending.typingIdle)
    ending.client.close()
  }
  forgetToken()
  history.clear()
  ui.messages.replaceChildren()
  ui.roomList.replaceChildren()
  ui.members.replaceChildren()
  ui.typing.textContent = ''
  showSignIn(message)
}

function startSession (token: string): void {
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const client = createClient({
    url,
    // Checked before every attempt, so an expired token leads back to sign-in instead of a reconnect loop.
    token: async () => {
      try {
        return await checkedToken(token)
      } catch (err) {
        if (err instanceof SessionRefused) queueMicrotask(() => { endSession(`Your session has ended (${err.reason}): sign in again.`) })
        throw err
      }
    }
  })
  session = {
    client,
    activeRoom: null,
    typing: new Map(),
    typingSentFor: null,
    typingIdle: undefined,
    membersTimer: setInterval(() => { refreshMembers() }, MEMBERS_REFRESH_MS),
    run: null
  }
  ui.signInSection.hidden = true
  ui.app.hidden = false
  ui.signOut.hidden = false
  ui.badge.show('connecting', {})

  client.on('state', (state, info) => {
    if (session?.client !== client) return
    ui.badge.show(state, info)
    if (state === 'open') {
      ui.whoami.hidden = false
      ui.whoami.textContent = `signed in as ${client.userId ?? '?'}`
      refreshMembers()
    }
  })
  client.on('message', (payload) => {
    addMessage(payload.room, payload.userId, payload.text)
    clearTyping(payload.room, payload.userId)
    if (payload.room === session?.activeRoom && !memberShown(payload.userId)) refreshMembers()
  })
  client.on('typing', (payload) => {
    if (payload.userId === client.userId) return
    const users = session?.typing.get(payload.room) ?? new Set<string>()
    if (payload.typing) users.add(payload.userId)
    else users.delete(payload.userId)
    session?.typing.set(payload.room, users)
    renderTyping()
  })
  client.on('room_rejoin_failed', ({ room, error }) => {
    renderRooms()
    addNotice(room, `could not rejoin ${room}: ${error.code}`)
  })
  // Resumable delivery: what was missed while away arrived before `resumed`.
  client.on('resumed', (info) => {
    if (session?.client !== client) return
    ui.badge.showResume({ replayed: info.replayed, gap: info.gap !== undefined })
  })
  // Lost for good (the server no longer held them): say so in every room, since
  // a lost frame may have been any of them. A real app would refetch history here.
  client.on('gap', ({ from, to }) => {
    if (session?.client !== client) return
    const count = to - from + 1
    for (const room of client.rooms) addNotice(room, `${count} ${count === 1 ? 'message was' : 'messages were'} missed while reconnecting (reload for the history)`)
  })
  client.on('resume_failed', ({ reason }) => {
    if (session?.client !== client) return
    for (const room of client.rooms) addNotice(room, `reconnected as a new session (${reason}): messages sent while you were away may be missing`)
  })
}

ui.signInForm.addEventListener('submit', (event) => {
  event.preventDefault()
  ui.signInError.textContent = ''
  signIn(ui.name.value.trim()).then(startSession, (err: unknown) => { ui.signInError.textContent = reasonOf(err) })
})
ui.signOut.addEventListener('click', () => { endSession('Signed out.') })

// ---- rooms and members -----------------------------------------------------

function renderRooms (): void {
  if (session === null) return
  const { client } = session
  if (session.activeRoom !== null && !client.rooms.has(session.activeRoom)) session.activeRoom = [...client.rooms][0] ?? null
  const items = [...client.rooms].map((room) => {
    const item = make('li', '', room === session?.activeRoom ? 'active' : '')
    const open = make('button', room, 'room-name')
    open.type = 'button'
    open.setAttribute('aria-pressed', String(room === session?.activeRoom))
    open.addEventListener('click', () => { selectRoom(room) })
    const leave = make('button', 'Leave')
    leave.type = 'button'
    leave.setAttribute('aria-label', `Leave ${room}`)
    leave.addEventListener('click', () => {
      client.leave(room).then(() => { renderRooms(); renderMessages() }, (err: unknown) => { addNotice(room, `leave failed: ${reasonOf(err)}`) })
    })
    item.append(open, leave)
    return item
  })
  ui.roomList.replaceChildren(...items)
  const active = session.activeRoom
  ui.activeRoom.textContent = active === null ? '' : `in ${active}`
  ui.messageText.disabled = active === null
  ;(ui.messageForm.querySelector('button') as HTMLButtonElement).disabled = active === null
  if (active === null) ui.members.replaceChildren()
}

function selectRoom (room: string): void {
  if (session === null) return
  session.activeRoom = room
  renderRooms()
  renderMessages()
  renderTyping()
  refreshMembers()
}

ui.joinForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const room = ui.roomName.value.trim()
  if (session === null || room === '') return
  session.client.join(room).then(() => { selectRoom(room); ui.messageText.focus() }, (err: unknown) => { addNotice(room, `join failed: ${reasonOf(err)}`) })
})

function memberShown (userId: string): boolean {
  return [...ui.members.children].some((item) => item.textContent === userId)
}

function refreshMembers (): void {
  const current = session
  const room = current?.activeRoom
  if (current === null || room === null || room === undefined || current.client.state !== 'open') return
  current.client.request('room_members', { room }).then((reply) => {
    const { users } = reply as { room: string, users: string[] }
    if (session !== current || current.activeRoom !== room) return
    ui.members.replaceChildren(...users.map((user) => make('li', user)))
  }, () => {
    // Lost with the connection or the room: the next refresh or reconnect asks again.
  })
}

// ---- messages --------------------------------------------------------------

/** Every message and notice, by room, so switching rooms shows each one's history. */
const history = new Map<string, HTMLLIElement[]>()

function remember (room: string, item: HTMLLIElement): void {
  const list = history.get(room) ?? []
  list.push(item)
  history.set(room, list)
  if (room === session?.activeRoom) {
    ui.messages.append(item)
    item.scrollIntoView({ block: 'nearest' })
  }
}

function renderMessages (): void {
  const room = session?.activeRoom
  ui.messages.replaceChildren(...(room === null || room === undefined ? [] : history.get(room) ?? []))
}

function addMessage (room: string, userId: string, text: string): HTMLLIElement {
  const item = make('li')
  item.dataset.author = userId
  item.append(make('span', userId, 'author'), make('span', text, 'text'))
  remember(room, item)
  return item
}

function addNotice (room: string, text: string): void {
  remember(room, make('li', text, 'notice'))
}

/** Send a message and show its state: sending, delivered to N, or failed with a retry button. */
function sendMessage (room: string, text: string, item?: HTMLLIElement): void {
  if (session === null) return
  const line = item ?? addMessage(room, session.client.userId ?? 'me', text)
  line.dataset.mine = 'true'
  line.querySelector('.state')?.remove()
  line.querySelector('.retry')?.remove()
  const state = make('span', 'sending…', 'state')
  state.dataset.state = 'sending'
  line.append(state)
  session.client.request('user_message', { room, text }, { timeoutMs: MESSAGE_TIMEOUT_MS }).then((ack) => {
    state.dataset.state = 'delivered'
    state.textContent = `delivered to ${ack.deliveredTo}${ack.failed > 0 ? `, failed for ${ack.failed}` : ''}`
  }, (err: unknown) => {
    state.dataset.state = 'failed'
    state.textContent = `failed: ${reasonOf(err)}`
    const retry = make('button', 'Retry', 'retry')
    retry.type = 'button'
    retry.setAttribute('aria-label', `Retry sending "${text}"`)
    retry.addEventListener('click', () => { sendMessage(room, text, line) })
    line.append(retry)
  })
}

ui.messageForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const room = session?.activeRoom
  const text = ui.messageText.value.trim()
  if (room === null || room === undefined || text === '') return
  stopTyping()
  sendMessage(room, text)
  ui.messageText.value = ''
})

// ---- typing ----------------------------------------------------------------

function stopTyping (): void {
  if (session === null) return
  clearTimeout(session.typingIdle)
  const room = session.typingSentFor
  session.typingSentFor = null
  if (room !== null && session.client.rooms.has(room)) session.client.send('typing_stopped', { room })
}

ui.messageText.addEventListener('input', () => {
  const room = session?.activeRoom
  if (session === null || room === null || room === undefined) return
  if (ui.messageText.value === '') { stopTyping(); return }
  // The server throttles repeated starts; one per keystroke burst keeps the indicator alive.
  if (session.typingSentFor !== room) {
    stopTyping()
    session.typingSentFor = room
    session.client.send('typing_started', { room })
  }
  clearTimeout(session.typingIdle)
  session.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS)
})

function clearTyping (room: string, userId: string): void {
  session?.typing.get(room)?.delete(userId)
  renderTyping()
}

function renderTyping (): void {
  const room = session?.activeRoom
  const users = room === null || room === undefined ? [] : [...session?.typing.get(room) ?? []]
  ui.typing.textContent = users.length === 0 ? '' : `${users.join(', ')} ${users.length === 1 ? 'is' : 'are'} typing…`
}

// ---- agent -----------------------------------------------------------------

function describe (type: string, payload: Record<string, unknown>): string {
  switch (type) {
    case 'agent_started': return `started (${String(payload.agentName)})`
    case 'agent_thinking': return `thinking: ${String(payload.reasoning)}`
    case 'tool_executing': return `tool ${String(payload.toolName)} executing ${JSON.stringify(payload.parameters)}`
    case 'tool_completed': return `tool ${String(payload.toolName)} completed ${JSON.stringify(payload.results)}`
    case 'agent_progress': return `progress: ${String(payload.stage)} ${String(payload.percent)}%`
    case 'agent_error': return `error ${String(payload.code)}: ${String(payload.message)}`
    case 'agent_completed': return `completed: ${String(payload.status)}`
    default: return type
  }
}

/** Start a run and show its events as they come; never rejects (failures are shown). */
function describeError (error: unknown): string {
  const message = (error as { message?: unknown } | null | undefined)?.message
  return typeof message === 'string' ? `: ${message}` : ''
}

async function runAgent (input: string): Promise<void> {
  if (session === null) return
  const run = session.client.startAgent(input)
  session.run = run
  ui.agentEvents.replaceChildren()
  ui.agentAnswer.textContent = ''
  ui.agentStop.disabled = false
  try {
    for await (const event of run) {
      const payload = event.payload as unknown as Record<string, unknown>
      const item = make('li', describe(event.type, payload))
      item.dataset.type = event.type
      ui.agentEvents.append(item)
      if (event.type === 'agent_completed') {
        const answer = event.payload.finalResponse as { text?: unknown } | undefined
        ui.agentAnswer.dataset.status = event.payload.status
        ui.agentAnswer.textContent = event.payload.status === 'completed'
          ? `Answer: ${typeof answer?.text === 'string' ? answer.text : JSON.stringify(answer)}`
          : `Run ${event.payload.status}${describeError(event.payload.error)}`
      }
    }
  } catch (err) {
    ui.agentAnswer.dataset.status = 'failed'
    ui.agentAnswer.textContent = `Run failed: ${reasonOf(err)}`
  } finally {
    if (session?.run === run) session.run = null
    ui.agentStop.disabled = true
  }
}

ui.agentForm.addEventListener('submit', (event) => {
  event.preventDefault()
  const input = ui.agentInput.value.trim()
  if (input !== '') runAgent(input).catch(() => {})
})

ui.agentStop.addEventListener('click', () => {
  const run = session?.run
  if (run === null || run === undefined) return
  ui.agentStop.disabled = true
  run.stop().catch((err: unknown) => { ui.agentAnswer.textContent = `Stop failed: ${reasonOf(err)}` })
})

// ---- start -----------------------------------------------------------------

const saved = storedToken()
if (saved === null) showSignIn('')
else startSession(saved)
