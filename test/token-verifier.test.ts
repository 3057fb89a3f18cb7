/**
 * The verified-token cache of createTokenVerifier: a repeated token is answered from it, and a
 * remembered token stops being accepted the moment it expires (its entry's TTL).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createTokenVerifier, mintToken, TokenError } from '../src/auth/tokens.js';

const SECRET = 'a-token-verifier-test-secret-of-32-bytes!';

describe('createTokenVerifier', () => {
  const verifier = createTokenVerifier({ mode: 'secret', secret: SECRET, ephemeral: false });

  it('should answer a repeated token from its cache', async () => {
    const token = await mintToken(SECRET, 'alice');
    const first = await verifier.verify(token);
    expect(first).toMatchObject({ userId: 'alice', isService: false });
    expect(await verifier.verify(token)).toBe(first);
    // Not from the cache when asked so.
    expect(await verifier.verify(token, { cache: false })).not.toBe(first);
  });

  it('should refuse a remembered token once it has expired', async () => {
    // `exp` has a one-second resolution: this token expires one to two seconds from now.
    const token = await mintToken(SECRET, 'bob', { expiresIn: 2 });
    const viewer = await verifier.verify(token);
    expect(await verifier.verify(token)).toBe(viewer);
    const expiresAt = viewer.expiresAt ?? 0;
    expect(expiresAt).toBeGreaterThan(Date.now());

    await sleep(expiresAt - Date.now() + 5);
    const refused = verifier.verify(token);
    await expect(refused).rejects.toBeInstanceOf(TokenError);
    await expect(refused).rejects.toThrow('token expired');
  });
});
