/**
 * Worker-only process for distributed mode (`npm run worker`): runs tasks from the BullMQ queue,
 * serves no clients (only `/metrics`, `/healthz` and `/readyz` on WORKER_METRICS_PORT when set).
 * Needs REDIS_URL; runs WORKER_CONCURRENCY tasks at once. SIGTERM/SIGINT drain: no new task is
 * taken, running ones get DRAIN_GRACE_MS to finish, the rest go back to the queue; a second
 * signal exits at once.
 */
import { createServer, type Server } from 'node:http';
import { ConfigError, loadConfig } from './config.js';
import { createHealthHandler } from './health.js';
import { createLogger } from './logger.js';
import { Metrics } from './observability/metrics.js';
import { observeTaskEvents } from './observability/task-observer.js';
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
  const metrics = new Metrics();
  const backend = await createRedisBackend({
    url: config.redisUrl,
    keyPrefix: config.redisKeyPrefix,
    eventRetention: config.eventRetention,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    lockDurationMs: config.workerLockMs,
    kinds: new KindRegistry(BUILT_IN_KINDS),
    logger,
    observe: observeTaskEvents(metrics, logger),
    onRedisError: () => metrics.redisErrors.inc(),
  });
  metrics.setSources({ openConnections: () => 0, queueDepth: () => backend.queue.depth() });
  await backend.startWorkers(config.workerConcurrency);

  let draining = false;
  let opsServer: Server | undefined;
  if (config.workerMetricsPort !== undefined) {
    const health = createHealthHandler({ probe: () => backend.probe(), isDraining: () => draining });
    opsServer = createServer((req, res) => {
      if (health(req, res)) return;
      if ((req.url ?? '').split('?')[0] === '/metrics' && config.metrics) {
        metrics.render().then(
          ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
          () => res.writeHead(500).end(),
        );
        return;
      }
      res.writeHead(404).end();
    });
    const server = opsServer;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.workerMetricsPort, config.host, () => resolve());
    });
  }
  logger.info('worker started', {
    concurrency: config.workerConcurrency,
    pid: process.pid,
    metricsPort: config.workerMetricsPort ?? null,
  });

  const shutdown = (signal: NodeJS.Signals) => {
    if (draining) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    draining = true;
    logger.info('worker draining: running tasks get the grace period, then go back to the queue', {
      signal,
      graceMs: config.drainGraceMs,
    });
    backend
      .stopWorkers(config.drainGraceMs)
      .then(() => backend.close())
      .then(
        () => {
          opsServer?.close();
          logger.info('worker drained: exiting', { signal });
          process.exit(0);
        },
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
