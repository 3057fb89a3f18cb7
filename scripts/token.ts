/**
 * Mints an HS256 token with AUTH_JWT_SECRET: `npm run token -- <userId> [--service] [--expires 1h]`.
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../src/auth/tokens.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { service: { type: 'boolean', default: false }, expires: { type: 'string', default: '12h' } },
});
const [userId] = positionals;
const secret = process.env['AUTH_JWT_SECRET'];
if (!userId) {
  console.error('usage: npm run token -- <userId> [--service] [--expires 1h]');
  process.exit(2);
}
if (!secret) {
  console.error(
    'AUTH_JWT_SECRET is not set: the token must be signed with the secret the server verifies with',
  );
  process.exit(2);
}
console.log(await mintToken(secret, userId, { service: values.service, expiresIn: values.expires }));
