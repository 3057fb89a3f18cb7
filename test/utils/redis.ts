import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

/** The Redis the suites use: TEST_REDIS_URL, or the local one. */
export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** Which backend the contract suites run against in this vitest project. */
export const TEST_BACKEND: 'embedded' | 'redis' =
  process.env['TEST_BACKEND'] === 'redis' ? 'redis' : 'embedded';

/** A fresh key prefix, so tests sharing one Redis never see each other's keys. */
export function uniquePrefix(): string {
  return `test:${randomBytes(6).toString('hex')}`;
}

/** Deletes every key of a test prefix (task data, streams and the BullMQ queue). */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    for (const pattern of [`${prefix}:*`, `{${prefix}:q}*`]) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}
