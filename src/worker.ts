/**
 * Worker-only process for distributed mode (`npm run worker`): runs tasks from the BullMQ queue,
 * serves no clients (only `/metrics`, `/healthz` and `/readyz` on WORKER_METRICS_PORT when set, bound
 * to METRICS_HOST, by default HOST).
 * Needs REDIS_URL; runs WORKER_CONCURRENCY tasks at once. SIGTERM/SIGINT drain: no new task is
 * taken, running ones get DRAIN_GRACE_MS to finish, the rest go back to the queue; a second
 * signal exits at once.
 */
import { backendFor } from './backends/backend-for-config.js';
import { ConfigError } from './env-values.js';
import { createOpsRoutes, listenOps } from './http/ops-routes.js';
import { createLogger } from './logger.js';
import { Metrics } from './observability/metrics.js';
import { startTracing } from './observability/tracing.js';
import {
  drainOnSignals,
  exitOnConfigError,
  exitOnStartupFailure,
  loadConfigOrExit,
} from './process-lifecycle.js';
import { KindRegistry } from './tasks/kind-registry.js';
import { BUILT_IN_KINDS } from './tasks/kinds/index.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit((loaded) => {
    if (loaded.redisUrl === undefined) throw new ConfigError('REDIS_URL', 'a worker process needs REDIS_URL');
    if (loaded.workerConcurrency === 0) {
      throw new ConfigError('WORKER_CONCURRENCY', 'a worker process needs 1 or more');
    }
  });
  const tracing = await startTracing('worker').catch(exitOnConfigError);
  const logger = createLogger(config.logLevel, undefined, tracing?.logFields);
  const metrics = new Metrics();
  const backend = await backendFor(config, { kinds: new KindRegistry(BUILT_IN_KINDS), logger, metrics });
  metrics.setSources({ openConnections: () => 0, queueDepth: () => backend.queue.depth() });
  await backend.startWorkers(config.workerConcurrency);

  let draining = false;
  const opsServer =
    config.workerMetricsPort === undefined
      ? undefined
      : await listenOps(
          createOpsRoutes({
            probe: () => backend.probe(),
            isDraining: () => draining,
            metrics,
            serveMetrics: config.metrics,
            logger,
          }),
          config.workerMetricsPort,
          config.metricsHost,
        );
  logger.info('worker started', {
    concurrency: config.workerConcurrency,
    pid: process.pid,
    metricsPort: config.workerMetricsPort ?? null,
    ops: opsServer?.url ?? null,
  });

  drainOnSignals(logger, async (signal) => {
    draining = true;
    logger.info('worker draining: running tasks get the grace period, then go back to the queue', {
      signal,
      graceMs: config.drainGraceMs,
    });
    await backend.stopWorkers(config.drainGraceMs);
    await backend.close();
    await opsServer?.close();
    await tracing?.shutdown();
  });
}

main().catch(exitOnStartupFailure('Worker start-up'));
