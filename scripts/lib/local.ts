/** Small helpers for processes the tests, the bench and the soak run on this machine. */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A TCP port on 127.0.0.1 that nobody listens on right now: bind port 0, read it, close. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      if (address === null || typeof address === 'string') {
        probe.close();
        reject(new Error('no port from the probe server'));
        return;
      }
      probe.close(() => resolve(address.port));
    });
  });
}

/** A new empty directory under the system's temporary directory. */
export function makeTempDir(prefix = 'tss-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * `redis-server` arguments for a server on 127.0.0.1:`port` with an append-only file in `dir`,
 * fsynced on every write: a stop followed by a start keeps every acknowledged write.
 */
export function durableRedisArgs(port: number, dir: string): string[] {
  return [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--daemonize',
    'no',
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    '--dir',
    dir,
  ];
}

/**
 * Variables of the service's configuration (and NODE_OPTIONS): a parent's values for these would
 * change how a child service authenticates, stores or runs, so children never inherit them.
 */
const SERVICE_VARIABLES: ReadonlySet<string> = new Set([
  'AUTH_JWT_SECRET',
  'AUTH_JWKS_URL',
  'AUTH_PUBLIC_KEY',
  'AUTH_ISSUER',
  'AUTH_AUDIENCE',
  'CORS_ORIGINS',
  'METRICS_PORT',
  'METRICS_HOST',
  'REDIS_URL',
  'REDIS_KEY_PREFIX',
  'NODE_ENV',
  'PORT',
  'HOST',
  'DATA_DIR',
  'WORKER_CONCURRENCY',
  'EVENT_RETENTION',
  'TASK_RETENTION',
  'MAX_RUNNING_PER_USER',
  'REDIS_COMMAND_TIMEOUT_MS',
  'LOG_LEVEL',
  'GRAPHIQL',
  'NODE_OPTIONS',
]);

/**
 * This process's environment without {@link SERVICE_VARIABLES} and OpenTelemetry's `OTEL_*` (a
 * child traces only when told to): the base of a child service's.
 */
export function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !SERVICE_VARIABLES.has(key) && !key.startsWith('OTEL_')) env[key] = value;
  }
  return env;
}
