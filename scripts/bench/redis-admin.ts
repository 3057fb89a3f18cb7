/** What the orchestrator asks of Redis itself: its version, its CPU, and removing a bench prefix's keys. */
import { Redis } from 'ioredis';

export async function redisVersion(url: string): Promise<string | null> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.info('server');
    return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

/** Deletes every key of a bench prefix (task data, streams, queue), in bounded batches. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  for (const pattern of [`${prefix}:*`, `{${prefix}:q}*`]) {
    let cursor = '0';
    for (let rounds = 0; rounds < 100_000; rounds++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5_000);
      if (keys.length > 0) deleted += await redis.unlink(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  }
  return deleted;
}

/** CPU time (user + system) of the whole Redis server so far, ms (INFO cpu); `null` without Redis. */
export async function redisCpuMs(redis: Redis | null): Promise<number | null> {
  if (!redis) return null;
  const info = await redis.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]);
  return Number.isFinite(sys + user) ? (sys + user) * 1000 : null;
}
