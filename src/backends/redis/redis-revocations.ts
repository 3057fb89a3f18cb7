import type { RevocationStore } from '../../tasks/ports.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';

/**
 * Keeps the later of the stored timestamp and ARGV[1], in one step (two gateways revoking at once,
 * or clocks a little apart, never move it back). KEYS: the user's revoked-before key.
 * Returns the stored timestamp.
 */
const REVOKE_BEFORE = `
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local before = tonumber(ARGV[1])
if before > stored then
  redis.call('SET', KEYS[1], ARGV[1])
  return before
end
return stored
`;

interface RevocationCommands {
  tssRevokeBefore(key: string, before: number): Promise<number>;
}

/**
 * Each user's revoked-before timestamp as one key in the user's hash-tag slot, shared by every
 * gateway. Kept without expiry: a token may live as long as its issuer says.
 */
export class RedisRevocations implements RevocationStore {
  readonly #client: RedisClient & RevocationCommands;
  readonly #keys: RedisKeys;

  constructor(client: RedisClient, keys: RedisKeys) {
    if (!('tssRevokeBefore' in client))
      client.defineCommand('tssRevokeBefore', { numberOfKeys: 1, lua: REVOKE_BEFORE });
    this.#client = client as RedisClient & RevocationCommands;
    this.#keys = keys;
  }

  async revokeBefore(userId: string, before: number): Promise<number> {
    return Number(await this.#client.tssRevokeBefore(this.#keys.revokedBefore(userId), Math.floor(before)));
  }

  async revokedBefore(userId: string): Promise<number> {
    const stored = await this.#client.get(this.#keys.revokedBefore(userId));
    return stored === null ? 0 : Number(stored);
  }
}
