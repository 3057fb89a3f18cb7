/**
 * Mints an HS256 token with AUTH_JWT_SECRET: `npm run token -- <userId> [--service] [--expires 1h]`.
 * The token carries `iat`, `exp`, and AUTH_ISSUER / AUTH_AUDIENCE when they are set, so the server
 * of the same environment accepts it.
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../src/auth/tokens.js';
import { loadConfigOrExit } from '../src/process-lifecycle.js';

const USAGE = 'usage: npm run token -- <userId> [--service] [--expires 1h]';
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { service: { type: 'boolean', default: false }, expires: { type: 'string', default: '12h' } },
});
const [userId] = positionals;
if (!userId) {
  console.error(USAGE);
  process.exit(2);
}
// The server's own reading of the environment: a bad variable exits 2 naming it.
const { auth } = loadConfigOrExit();
if (auth.mode !== 'secret' || auth.ephemeral) {
  console.error(
    'AUTH_JWT_SECRET is not set: the token must be signed with the secret the server verifies with',
  );
  process.exit(2);
}
const expiresIn = /^\d+$/.test(values.expires) ? Number(values.expires) : values.expires;
try {
  const { secret, issuer, audience } = auth;
  console.log(await mintToken(secret, userId, { service: values.service, expiresIn, issuer, audience }));
} catch (error) {
  console.error(`--expires: ${error instanceof Error ? error.message : String(error)} (e.g. 30m, 12h, 7d)`);
  process.exit(2);
}
