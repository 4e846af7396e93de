import t from 'tap'
import { CLIENT_BUDGET_BYTES, CLIENT_ENTRY, VALIDATE_ENTRY, measure } from '../scripts/client-size.js'

t.test('the client bundles for browsers without Node built-ins or TypeBox, within its size budget', async (t) => {
  // platform: 'browser' fails the build on any node:* import.
  const client = await measure(CLIENT_ENTRY)
  t.comment(`fastify-ws-router/client: ${client.minBytes} B min, ${client.gzipBytes} B min+gzip`)
  t.notMatch(client.code, /typebox|TypeCompiler|require\(/i, 'no TypeBox and no CommonJS at run time')
  t.ok(client.gzipBytes <= CLIENT_BUDGET_BYTES, `${client.gzipBytes} B min+gzip within the ${CLIENT_BUDGET_BYTES} B budget`)
  t.ok(client.gzipBytes > 1024, 'the bundle holds the client (not an empty module)')
  t.match(client.code, /bearer/, 'the client code is in it')

  const validating = await measure(VALIDATE_ENTRY)
  t.comment(`with fastify-ws-router/client/validate: ${validating.minBytes} B min, ${validating.gzipBytes} B min+gzip`)
  t.ok(validating.gzipBytes > client.gzipBytes, 'validation is what brings TypeBox in')
})
