import { createApp, METRICS_PATH } from './app.js';
import type { Config } from './config.js';
import { createLogger } from './logger.js';
import { startTracing } from './observability/tracing.js';
import {
  drainOnSignals,
  exitOnConfigError,
  exitOnStartupFailure,
  loadConfigOrExit,
} from './process-lifecycle.js';

/** Where `/metrics` answers, for the start-up banner. */
function metricsWhere(config: Config, url: string, metricsUrl: string | null): string {
  if (!config.metrics) return 'Metrics: off (METRICS=false)';
  const where = [metricsUrl, config.production ? null : new URL(METRICS_PATH, url).href].filter(Boolean);
  return where.length > 0
    ? `Metrics on ${where.join(' and ')}`
    : 'Metrics: not served (NODE_ENV=production keeps them off the public port: set METRICS_PORT)';
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const tracing = await startTracing('gateway').catch(exitOnConfigError);
  const logger = createLogger(config.logLevel, undefined, tracing?.logFields);
  const app = await createApp({ config, logger });
  const { url, devTokens, metricsUrl } = await app.start();
  const mode =
    config.redisUrl === undefined ? { mode: 'embedded', dataDir: config.dataDir } : { mode: 'redis' };
  logger.info('listening', { url, ...mode, workerConcurrency: config.workerConcurrency, metricsUrl });
  console.log(`Task status service on ${url} (GraphiQL in a browser); demo page at ${new URL('/', url)}`);
  console.log(metricsWhere(config, url, metricsUrl));
  if (devTokens) {
    console.log(
      [
        'No AUTH_* key set: using an ephemeral secret; tokens below are valid until this process stops.',
        `  user ${devTokens.userId}:       ${devTokens.user}`,
        `  service ${devTokens.serviceId}: ${devTokens.service}`,
      ].join('\n'),
    );
  }

  drainOnSignals(logger, async (signal) => {
    logger.info('draining', { signal, graceMs: config.drainGraceMs });
    await app.stop({ graceMs: config.drainGraceMs });
    await tracing?.shutdown();
  });
}

main().catch(exitOnStartupFailure('Start-up'));
