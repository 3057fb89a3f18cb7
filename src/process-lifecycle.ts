import { type Config, loadConfig } from './config.js';
import { ConfigError } from './env-values.js';
import type { Logger } from './logger.js';

/**
 * Reads the configuration (and runs `check` on it) or exits with code 2 and a message naming the
 * variable: what both entry points do first.
 */
export function loadConfigOrExit(check: (config: Config) => void = () => {}): Config {
  try {
    const config = loadConfig();
    check(config);
    return config;
  } catch (error) {
    return exitOnConfigError(error);
  }
}

/** Exits with code 2 and the variable's message for a {@link ConfigError}; throws anything else. */
export function exitOnConfigError(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(`Configuration error: ${error.message}`);
    process.exit(2);
  }
  throw error;
}

/**
 * A signal this soon after the first is a copy of it, not an operator insisting: a terminal's
 * Ctrl-C, systemd's default stop and `kill -- -PGID` signal the whole process group, and `npm start`
 * forwards what it receives to the server, so the server gets the same signal twice within
 * milliseconds.
 */
export const SIGNAL_COPY_WINDOW_MS = 1_000;

/**
 * On the first SIGTERM/SIGINT runs `drain` and exits 0 (1 if it fails). A signal within
 * {@link SIGNAL_COPY_WINDOW_MS} of the first is ignored as a copy of it; a later one exits at once
 * with 1.
 */
export function drainOnSignals(logger: Logger, drain: (signal: NodeJS.Signals) => Promise<void>): void {
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt !== undefined) {
      if (Date.now() - firstAt < SIGNAL_COPY_WINDOW_MS) {
        logger.info('signal copy ignored: already draining', { signal });
        return;
      }
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    firstAt = Date.now();
    drain(signal).then(
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
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Ends the process with code 1 when start-up throws, printing what failed. */
export function exitOnStartupFailure(what: string) {
  return (err: unknown) => {
    console.error(`${what} failed:`, err instanceof Error ? err.message : err);
    process.exit(1);
  };
}
