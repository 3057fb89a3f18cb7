import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/env-values.js';

/** The ConfigError `loadConfig` throws for `env`; fails the test when it accepts it. */
export function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}
