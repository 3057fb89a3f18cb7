/**
 * Worker-only process for distributed mode (`npm run worker`): runs tasks from the BullMQ queue,
 * serves no clients. Needs REDIS_URL; runs WORKER_CONCURRENCY tasks at once.
 */
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';
import { createRedisBackend } from './store/redis/redis-backend.js';
import { KindRegistry } from './tasks/kind-registry.js';
import { BUILT_IN_KINDS } from './tasks/kinds/index.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
    if (config.redisUrl === undefined) throw new ConfigError('REDIS_URL', 'a worker process needs REDIS_URL');
    if (config.workerConcurrency === 0)
      throw new ConfigError('WORKER_CONCURRENCY', 'a worker process needs 1 or more');
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const backend = await createRedisBackend({
    url: config.redisUrl,
    keyPrefix: config.redisKeyPrefix,
    eventRetention: config.eventRetention,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    lockDurationMs: config.workerLockMs,
    kinds: new KindRegistry(BUILT_IN_KINDS),
    logger,
  });
  await backend.startWorkers(config.workerConcurrency);
  logger.info('worker started', { concurrency: config.workerConcurrency, pid: process.pid });

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info('worker stopping: handing running tasks back', { signal });
    backend.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error('worker shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error('Worker start-up failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
