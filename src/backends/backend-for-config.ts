import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import { observeTaskEvents } from '../observability/task-observer.js';
import type { KindRegistry } from '../tasks/kind-registry.js';
import type { Backend } from '../tasks/ports.js';
import { observedWithTracing } from '../tasks/task-tracing.js';
import { createEmbeddedBackend } from './embedded/embedded-backend.js';
import { createRedisBackend, redisOptionsFromConfig } from './redis/redis-backend.js';

/** What every backend is built with. */
export interface BackendParts {
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  /** Told of every task event and Redis error. */
  readonly metrics: Metrics;
}

/** The embedded backend: SQLite in `config.dataDir`, in-process bus and workers. */
export function embeddedBackendFor(config: Config, { kinds, logger, metrics }: BackendParts): Backend {
  return createEmbeddedBackend({
    dataDir: config.dataDir,
    eventRetention: config.eventRetention,
    taskRetentionMs: config.taskRetentionMs,
    maxRunningPerUser: config.maxRunningPerUser,
    kinds,
    logger,
    observe: observedWithTracing(observeTaskEvents(metrics, logger)),
  });
}

/**
 * The backend the configuration asks for: Redis when `REDIS_URL` is set (throws
 * `RedisUnavailableError` when it does not answer in time), embedded otherwise.
 */
export async function backendFor(config: Config, parts: BackendParts): Promise<Backend> {
  if (config.redisUrl === undefined) return embeddedBackendFor(config, parts);
  const { kinds, logger, metrics } = parts;
  return createRedisBackend({
    ...redisOptionsFromConfig(config),
    kinds,
    logger,
    observe: observedWithTracing(observeTaskEvents(metrics, logger)),
    onRedisError: () => metrics.redisErrors.inc(),
  });
}
