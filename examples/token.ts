/**
 * `npm run -s token -- <userId>`: print a JWT for the example server, signed
 * with `AUTH_SECRET` (outside production, the development secret when it is
 * not set), valid for one hour. Only the token goes to stdout:
 *
 *   TOKEN=$(npm run -s token -- alice)
 */
import { resolveAuthSecret, signToken, TOKEN_TTL_MS } from './auth.js'

const userId = process.argv[2]
if (userId === undefined || userId === '' || userId.length > 256 || process.argv.length > 3) {
  console.error('usage: npm run -s token -- <userId>   (1 to 256 characters)')
  process.exit(2)
}

let secret: string
try {
  secret = resolveAuthSecret(process.env)
} catch (err) {
  console.error((err as Error).message)
  process.exit(1)
}

if (process.env.AUTH_SECRET === undefined || process.env.AUTH_SECRET.trim() === '') {
  console.error('note: AUTH_SECRET is not set, so this token is signed with the development secret (accepted by `npm start` outside production only)')
}
console.error(`token for "${userId}", valid for ${TOKEN_TTL_MS / 60_000} minutes:`)
process.stdout.write(`${signToken(secret, userId)}\n`)
