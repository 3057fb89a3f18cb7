import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Configuration error: ${error.message}`);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel);
  const app = await createApp({ config, logger });
  const { url, devTokens } = await app.start();
  const mode =
    config.redisUrl === undefined ? { mode: 'embedded', dataDir: config.dataDir } : { mode: 'redis' };
  logger.info('listening', { url, ...mode, workerConcurrency: config.workerConcurrency });
  console.log(`Task status service on ${url} (GraphiQL in a browser); demo page at ${new URL('/', url)}`);
  if (devTokens) {
    console.log(
      [
        'No AUTH_* key set: using an ephemeral secret; tokens below are valid until this process stops.',
        `  user ${devTokens.userId}:       ${devTokens.user}`,
        `  service ${devTokens.serviceId}: ${devTokens.service}`,
      ].join('\n'),
    );
  }

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('draining', { signal, graceMs: config.drainGraceMs });
    app.stop({ graceMs: config.drainGraceMs }).then(
      () => {
        logger.info('drained: exiting', { signal });
        process.exit(0);
      },
      (err: unknown) => {
        logger.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

main().catch((err: unknown) => {
  console.error('Start-up failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
