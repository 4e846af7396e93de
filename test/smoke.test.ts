import t from 'tap'
import { startServer } from './helpers/server.js'
import { connect } from './helpers/client.js'

t.test('ping', async (t) => {
  const server = await startServer()
  t.teardown(server.close)
  const client = await connect(server.url + '?user=alice')
  const hello = await client.next('connection_established')
  t.equal(hello.payload.userId, 'alice')
  client.send({ type: 'ping', id: 1 })
  const pong = await client.next('pong')
  t.equal(pong.id, 1)
  client.close()
})
