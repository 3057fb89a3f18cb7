import type { Logger } from '../../logger.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type {
  RateLimiter,
  RateRule,
  RevocationStore,
  TaskEventObserver,
  TaskQueue,
  TaskRepository,
} from '../../tasks/ports.js';
import { BullmqQueue } from './bullmq-queue.js';
import { EnqueueOutbox } from './enqueue-outbox.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import type { GuardedRedisPubSub } from './redis-pubsub.js';
import { RedisRateLimiter } from './redis-rate-limiter.js';
import { RedisRepository } from './redis-repository.js';
import { RedisRevocations } from './redis-revocations.js';
import {
  guarded,
  UnavailableTranslatingRepository,
  unavailableTranslatingLimiter,
  unavailableTranslatingRevocations,
  withDeadline,
} from './redis-unavailable.js';

/** Retry-After of SERVICE_UNAVAILABLE while Redis does not answer: about a reconnect's time. */
const UNAVAILABLE_RETRY_AFTER_MS = 2_000;

export interface RequestSideOptions {
  /** The requests' client: fail-fast (`createRedisClient(…, { commandTimeoutMs })`) unless the deadline is off. */
  readonly client: RedisClient;
  /** The client that waits for Redis (workers, pub/sub publishes); drops outbox entries. */
  readonly patientClient: RedisClient;
  readonly keys: RedisKeys;
  readonly eventRetention: number;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  readonly observe?: TaskEventObserver | undefined;
  /** Carries cancellations to the workers. */
  readonly channels: GuardedRedisPubSub;
  /** `REDIS_COMMAND_TIMEOUT_MS`; 0: requests wait for Redis as long as it takes. */
  readonly commandTimeoutMs: number;
  /** See {@link EnqueueOutboxOptions.graceMs}. @default 3 × commandTimeoutMs + 1 s (30 s without a deadline) */
  readonly outboxGraceMs?: number | undefined;
  /** How often the outbox is swept. @default a quarter of the grace, from 0.5 to 5 s */
  readonly outboxSweepMs?: number | undefined;
}

/** What requests use of Redis; each call fails with `UnavailableError` when Redis does not answer in time. */
export interface RequestSide {
  readonly tasks: TaskRepository;
  /** The start path's queue: a fail-fast BullMQ queue whose adds drop the tasks' outbox entries. */
  readonly queue: TaskQueue & { ping(): Promise<void> };
  readonly revocations: RevocationStore;
  rateLimiter(name: string, rule: RateRule): RateLimiter;
  readonly outbox: EnqueueOutbox;
  /** Stops the sweeper and closes the start path's queue (not `client`). */
  close(): Promise<void>;
}

/**
 * The request side of distributed mode, apart from the workers' side: its own connection with a
 * command deadline and no offline queue, so a request against a Redis that is away fails within
 * about `commandTimeoutMs` with SERVICE_UNAVAILABLE instead of hanging (BullMQ's own advice for a
 * queue that an HTTP handler adds to: `enableOfflineQueue: false`), while the workers keep a
 * connection that waits, so their outcome writes are not lost while Redis is briefly down.
 */
export function createRequestSide(options: RequestSideOptions): RequestSide {
  const { client, patientClient, keys, logger, commandTimeoutMs } = options;
  const retryAfterMs = UNAVAILABLE_RETRY_AFTER_MS;
  const graceMs = options.outboxGraceMs ?? (commandTimeoutMs > 0 ? 3 * commandTimeoutMs + 1_000 : 30_000);
  const repository = new RedisRepository({
    client,
    keys,
    eventRetention: options.eventRetention,
    observe: options.observe,
    createDeadlineMs: commandTimeoutMs,
  });
  const tasks = new UnavailableTranslatingRepository(repository, retryAfterMs);
  let outbox: EnqueueOutbox | undefined;
  const startQueue = new BullmqQueue({
    client,
    channels: options.channels,
    keys,
    repository,
    kinds: options.kinds,
    logger,
    onEnqueued: (queued) => outbox?.ack(queued),
    unavailableRetryAfterMs: retryAfterMs,
  });
  outbox = new EnqueueOutbox({
    client,
    ackClient: patientClient,
    jobs: startQueue,
    keys,
    repository: tasks,
    enqueue: (queued) => startQueue.enqueue(queued),
    logger,
    graceMs,
    intervalMs: options.outboxSweepMs ?? Math.min(5_000, Math.max(500, Math.floor(graceMs / 4))),
  });
  outbox.start();
  const revocations = unavailableTranslatingRevocations(new RedisRevocations(client, keys), retryAfterMs);
  return {
    tasks,
    queue: {
      enqueue: (queued) => startQueue.enqueue(queued),
      // The publish waits for Redis (it is the pub/sub publisher's); sent late, it only repeats
      // a cancellation the store holds already.
      cancel: (taskId) => withDeadline('queue', commandTimeoutMs, retryAfterMs, startQueue.cancel(taskId)),
      depth: () => guarded('queue', retryAfterMs, () => startQueue.depth()),
      ping: () => startQueue.ping(),
    },
    revocations,
    rateLimiter: (name, rule) =>
      unavailableTranslatingLimiter(new RedisRateLimiter(client, keys, name, rule), retryAfterMs),
    outbox,
    async close() {
      await outbox?.stop();
      await startQueue.close();
    },
  };
}
