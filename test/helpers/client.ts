import WebSocket from 'ws'

export interface Frame {
  type: string
  id?: string | number
  payload?: any
  timestamp: number
}

export interface TestClient {
  ws: WebSocket
  frames: Frame[]
  /** Resolves with the first frame (already received or next) that matches. */
  next: (match: string | ((frame: Frame) => boolean), timeoutMs?: number) => Promise<Frame>
  send: (frame: unknown) => void
  sendRaw: (data: string | Buffer, binary?: boolean) => void
  closed: Promise<{ code: number, reason: string }>
  close: () => void
}

/** A `ws` client that records every frame and can wait for one. */
export async function connect (url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
  const ws = new WebSocket(url, options)
  const frames: Frame[] = []
  const waiters: Array<{ match: (frame: Frame) => boolean, resolve: (frame: Frame) => void }> = []
  const consumed = new Set<Frame>()
  ws.on('message', (data) => {
    const frame = JSON.parse(data.toString()) as Frame
    frames.push(frame)
    const index = waiters.findIndex((w) => w.match(frame))
    if (index !== -1) {
      consumed.add(frame)
      const [waiter] = waiters.splice(index, 1)
      waiter?.resolve(frame)
    }
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
  })
  ws.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)))
    ws.once('error', reject)
  })
  const toMatcher = (match: string | ((frame: Frame) => boolean)): ((frame: Frame) => boolean) =>
    typeof match === 'string' ? (frame) => frame.type === match : match
  return {
    ws,
    frames,
    next (match, timeoutMs = 5000) {
      const matcher = toMatcher(match)
      const found = frames.find((frame) => !consumed.has(frame) && matcher(frame))
      if (found !== undefined) {
        consumed.add(found)
        return Promise.resolve(found)
      }
      return new Promise<Frame>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(frames.map((f) => f.type))}`)), timeoutMs)
        waiters.push({ match: matcher, resolve: (frame) => { clearTimeout(timer); resolve(frame) } })
      })
    },
    send (frame) { ws.send(JSON.stringify(frame)) },
    sendRaw (data, binary = false) { ws.send(data, { binary }) },
    closed,
    close () { ws.close() }
  }
}

/** Try an upgrade and report the HTTP refusal (status and JSON body), or 101. */
export async function tryUpgrade (url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<{ status: number, body: any, protocol?: string }> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options)
    ws.on('open', () => {
      const protocol = ws.protocol
      ws.terminate()
      resolve({ status: 101, body: null, protocol })
    })
    ws.on('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => { text += chunk.toString() })
      res.on('end', () => {
        let body: unknown = text
        try { body = JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body })
      })
    })
    ws.on('error', (err) => { if (!String(err.message).includes('Unexpected server response')) reject(err) })
  })
}
