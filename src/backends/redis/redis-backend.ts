import type { Config } from '../../config.js';
import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { Backend, ProbeResult, TaskEventObserver } from '../../tasks/ports.js';
import { RetentionSchedule } from '../retention-schedule.js';
import { BullmqQueue } from './bullmq-queue.js';
import { RedisKeys } from './keys.js';
import { RedisBus } from './redis-bus.js';
import { createRedisClient, parseRedisUrl, type RedisClient, waitUntilReady } from './redis-connection.js';
import { RedisControl } from './redis-control.js';
import { GuardedRedisPubSub } from './redis-pubsub.js';
import { RedisRepository } from './redis-repository.js';
import { RedisRetention } from './redis-retention.js';
import { createRequestSide } from './request-side.js';

/** A readiness probe waits this long for each answer. */
const PROBE_TIMEOUT_MS = 1_000;

async function probePart(
  part: string,
  client: RedisClient,
  ping: () => Promise<unknown>,
): Promise<ProbeResult> {
  if (client.status !== 'ready') return { part, ok: false, detail: `redis connection is ${client.status}` };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ping(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer from redis within ${PROBE_TIMEOUT_MS} ms`)),
          PROBE_TIMEOUT_MS,
        );
      }),
    ]);
    return { part, ok: true };
  } catch (error) {
    return { part, ok: false, detail: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

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
  /**
   * How long a request waits for a Redis command before SERVICE_UNAVAILABLE; requests get a
   * connection of their own without an offline queue (see `createRequestSide`), workers keep one
   * that waits for Redis. 0: requests wait as long as it takes, on the workers' connection. @default 5000
   */
  readonly commandTimeoutMs?: number;
  /** How old an enqueue-outbox entry is before the sweeper settles it. @default 3 × commandTimeoutMs + 1 s */
  readonly outboxGraceMs?: number;
  /** How often this process sweeps the enqueue outbox. @default a quarter of the grace, 0.5 to 5 s */
  readonly outboxSweepMs?: number;
  /** Finished tasks and their events are purged this long after they finished; 0 keeps them. @default 0 */
  readonly taskRetentionMs?: number;
  /** Tasks of one user running at once across the deployment; 0: no cap. @default 0 */
  readonly maxRunningPerUser?: number;
  /** Told of every event this process appends (metrics, logs). */
  readonly observe?: TaskEventObserver | undefined;
  /** Called on every error a Redis connection reports (the log keeps one line a second). */
  readonly onRedisError?: ((error: Error) => void) | undefined;
}

/**
 * Distributed mode: task hashes and per-user streams in Redis, fan-out over Redis pub/sub, the
 * queue on BullMQ. Throws `RedisUnavailableError` when Redis does not answer in time.
 */
/** The options of {@link createRedisBackend} that the configuration decides. */
export function redisOptionsFromConfig(config: Config) {
  if (config.redisUrl === undefined) throw new Error('distributed mode needs REDIS_URL');
  return {
    url: config.redisUrl,
    keyPrefix: config.redisKeyPrefix,
    eventRetention: config.eventRetention,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    lockDurationMs: config.workerLockMs,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    taskRetentionMs: config.taskRetentionMs,
    maxRunningPerUser: config.maxRunningPerUser,
  } satisfies Partial<RedisBackendOptions>;
}

export async function createRedisBackend(options: RedisBackendOptions): Promise<Backend> {
  const {
    url,
    keyPrefix = 'tss',
    eventRetention,
    kinds,
    logger,
    connectTimeoutMs = 10_000,
    commandTimeoutMs = 5_000,
    observe,
    onRedisError,
  } = options;
  const target = parseRedisUrl(url);
  const keys = new RedisKeys(keyPrefix);
  const client = createRedisClient(target);
  const subscriber = createRedisClient(target, { subscriber: true });
  const requestClient = commandTimeoutMs > 0 ? createRedisClient(target, { commandTimeoutMs }) : client;
  const clients: RedisClient[] = [client, subscriber, ...(requestClient === client ? [] : [requestClient])];
  let lastErrorLog = 0;
  for (const c of clients) {
    c.on('error', (err: Error) => {
      onRedisError?.(err);
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
  const repository = new RedisRepository({ client, keys, eventRetention, observe });
  const pubsub = new GuardedRedisPubSub({ publisher: client, subscriber, logger });
  const bus = new RedisBus(pubsub, keys, logger);
  const queue = new BullmqQueue({
    client,
    channels: pubsub,
    keys,
    repository,
    kinds,
    logger,
    ...(options.lockDurationMs === undefined ? {} : { lockDurationMs: options.lockDurationMs }),
    ...(options.maxRunningPerUser === undefined ? {} : { maxRunningPerUser: options.maxRunningPerUser }),
  });
  const control = new RedisControl({ pubsub, publisher: client, keys, logger });
  const { taskRetentionMs = 0 } = options;
  const sweeper = new RedisRetention({ client, keys, retentionMs: taskRetentionMs });
  const retention =
    taskRetentionMs > 0
      ? new RetentionSchedule({
          retentionMs: taskRetentionMs,
          purge: (cutoff, stopped) => sweeper.purgeBefore(cutoff, stopped),
          logger,
        })
      : undefined;
  retention?.start();
  const requests = createRequestSide({
    client: requestClient,
    patientClient: client,
    keys,
    eventRetention,
    kinds,
    logger,
    observe,
    channels: pubsub,
    commandTimeoutMs,
    outboxGraceMs: options.outboxGraceMs,
    outboxSweepMs: options.outboxSweepMs,
  });
  return {
    tasks: requests.tasks,
    bus,
    queue: requests.queue,
    control,
    revocations: requests.revocations,
    rateLimiter: requests.rateLimiter,
    async probe() {
      return Promise.all([
        probePart('store', requestClient, () => requestClient.ping()),
        probePart('bus', subscriber, () => subscriber.ping()),
        probePart('queue', requestClient, () => requests.queue.ping()),
      ]);
    },
    startWorkers: (concurrency) => queue.start(concurrency),
    stopWorkers: (graceMs = 0) => queue.stopWorkers(graceMs),
    async close() {
      await retention?.close();
      await requests.close();
      await queue.close();
      await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    },
  };
}
