import { createApp } from './app.js';
import { createLogger } from './logger.js';
import { drainOnSignals, exitOnStartupFailure, loadConfigOrExit } from './process-lifecycle.js';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
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

  drainOnSignals(logger, async (signal) => {
    logger.info('draining', { signal, graceMs: config.drainGraceMs });
    await app.stop({ graceMs: config.drainGraceMs });
  });
}

main().catch(exitOnStartupFailure('Start-up'));
