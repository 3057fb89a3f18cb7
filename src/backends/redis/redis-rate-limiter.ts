import type { RateDecision, RateLimiter, RateRule } from '../../tasks/ports.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import { GIVE_BACK_TOKEN, TAKE_TOKEN } from './scripts.js';

interface TokenCommands {
  tssTakeToken(key: string, capacity: number, periodMs: number): Promise<[number, number]>;
  tssGiveBackToken(key: string, capacity: number): Promise<number>;
}

/**
 * Token buckets in Redis (one hash per key, in that user's hash-tag slot), shared by every
 * gateway: a user cannot multiply their allowance by spreading calls over gateways.
 */
export class RedisRateLimiter implements RateLimiter {
  readonly #client: RedisClient & TokenCommands;
  readonly #keys: RedisKeys;
  readonly #name: string;
  readonly #rule: RateRule;

  constructor(client: RedisClient, keys: RedisKeys, name: string, rule: RateRule) {
    if (!('tssTakeToken' in client))
      client.defineCommand('tssTakeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    if (!('tssGiveBackToken' in client))
      client.defineCommand('tssGiveBackToken', { numberOfKeys: 1, lua: GIVE_BACK_TOKEN });
    this.#client = client as RedisClient & TokenCommands;
    this.#keys = keys;
    this.#name = name;
    this.#rule = rule;
  }

  async take(key: string): Promise<RateDecision> {
    const [allowed, waitMs] = await this.#client.tssTakeToken(
      this.#keys.rateBucket(this.#name, key),
      this.#rule.capacity,
      this.#rule.periodMs,
    );
    return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs: Math.max(1, waitMs) };
  }

  async giveBack(key: string): Promise<void> {
    await this.#client.tssGiveBackToken(this.#keys.rateBucket(this.#name, key), this.#rule.capacity);
  }
}
