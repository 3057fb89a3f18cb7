import type { RateDecision, RateLimiter, RateRule } from '../../tasks/ports.js';

/** Buckets kept before full ones (idle keys) are swept. */
const SWEEP_AT = 10_000;

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Token buckets in this process's memory (embedded mode): each key starts full with
 * `rule.capacity` tokens and regains `capacity` per `periodMs`, continuously.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #now: () => number;

  constructor({ capacity, periodMs }: RateRule, now: () => number = Date.now) {
    this.#capacity = capacity;
    this.#refillPerMs = capacity / periodMs;
    this.#now = now;
  }

  async take(key: string): Promise<RateDecision> {
    const now = this.#now();
    if (this.#buckets.size >= SWEEP_AT) this.#sweep(now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.#capacity, updatedAt: now };
    bucket.tokens = this.#level(bucket, now);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / this.#refillPerMs) };
  }

  async giveBack(key: string): Promise<void> {
    const bucket = this.#buckets.get(key);
    if (bucket) bucket.tokens = Math.min(this.#capacity, bucket.tokens + 1);
  }

  #level(bucket: Bucket, now: number): number {
    return Math.min(this.#capacity, bucket.tokens + Math.max(0, now - bucket.updatedAt) * this.#refillPerMs);
  }

  /** A full bucket is the same as no bucket: forget it. */
  #sweep(now: number): void {
    for (const [key, bucket] of this.#buckets) {
      if (this.#level(bucket, now) >= this.#capacity) this.#buckets.delete(key);
    }
  }
}
