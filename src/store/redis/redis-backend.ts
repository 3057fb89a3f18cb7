import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { Backend } from '../ports.js';
import { BullmqQueue } from './bullmq-queue.js';
import { RedisKeys } from './keys.js';
import { RedisBus } from './redis-bus.js';
import { createRedisClient, parseRedisUrl, type RedisClient, waitUntilReady } from './redis-connection.js';
import { RedisRepository } from './redis-repository.js';

export interface RedisBackendOptions {
  /** `REDIS_URL`: one URL, or a comma-separated list of cluster nodes. */
  readonly url: string;
  /** Prefix of every key and channel; tests use a unique one each. @default 'tss' */
  readonly keyPrefix?: string;
  readonly eventRetention: number;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  /** How long start-up waits for Redis before giving up. @default 10000 */
  readonly connectTimeoutMs?: number;
  /** See {@link BullmqQueue}. */
  readonly lockDurationMs?: number;
}

/**
 * Distributed mode: task hashes and per-user streams in Redis, fan-out over Redis pub/sub, the
 * queue on BullMQ. Throws `RedisUnavailableError` when Redis does not answer in time.
 */
export async function createRedisBackend(options: RedisBackendOptions): Promise<Backend> {
  const { url, keyPrefix = 'tss', eventRetention, kinds, logger, connectTimeoutMs = 10_000 } = options;
  const target = parseRedisUrl(url);
  const keys = new RedisKeys(keyPrefix);
  const client = createRedisClient(target);
  const subscriber = createRedisClient(target);
  const clients: RedisClient[] = [client, subscriber];
  let lastErrorLog = 0;
  for (const c of clients) {
    c.on('error', (err: Error) => {
      // ioredis repeats the error on every reconnect attempt; one line a second is enough.
      if (Date.now() - lastErrorLog > 1_000) {
        lastErrorLog = Date.now();
        logger.error('redis error', { err });
      }
    });
  }
  try {
    await Promise.all(clients.map((c) => waitUntilReady(c, target.display, connectTimeoutMs)));
  } catch (error) {
    for (const c of clients) c.disconnect();
    throw error;
  }
  const repository = new RedisRepository({ client, keys, eventRetention });
  const bus = new RedisBus(client, subscriber, keys, logger);
  const queue = new BullmqQueue({
    client,
    pubsub: bus.pubsub,
    keys,
    repository,
    kinds,
    logger,
    ...(options.lockDurationMs === undefined ? {} : { lockDurationMs: options.lockDurationMs }),
  });
  return {
    tasks: repository,
    bus,
    queue,
    startWorkers: (concurrency) => queue.start(concurrency),
    async close() {
      await queue.close();
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
}
