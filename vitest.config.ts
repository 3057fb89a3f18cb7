import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/** Suites of the public contract: they run once per backend. */
const CONTRACT_SUITES = [
  'test/smoke.test.ts',
  'test/auth.test.ts',
  'test/security-revocation.test.ts',
  'test/bad-input.test.ts',
  'test/tasks-lifecycle.test.ts',
  'test/kinds.test.ts',
  'test/delivery.test.ts',
  'test/heartbeat.test.ts',
  'test/ops-limits.test.ts',
  'test/ops-observability.test.ts',
  'test/ops-production.test.ts',
  'test/ops-fuzz.test.ts',
  'test/client/task-client.test.ts',
  'test/service-rules.test.ts',
  'test/security-input.test.ts',
  'test/start-tasks.test.ts',
  'test/client/start-tasks.test.ts',
];
/** Suites about distributed mode only (several processes, Redis faults, Redis Cluster). */
const REDIS_SUITES = ['test/redis/**/*.test.ts', 'test/ops-distributed.test.ts', 'test/soak.test.ts'];

const redisUrl = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
function redisAnswers(): boolean {
  try {
    return (
      execFileSync('redis-cli', ['-u', redisUrl, 'ping'], { timeout: 3_000 }).toString().trim() === 'PONG'
    );
  } catch {
    return false;
  }
}
// Outside CI a machine without Redis runs the embedded project only; in CI the redis project
// always runs, so an unreachable Redis fails the run instead of skipping it.
const withRedis = process.env['CI'] === 'true' || redisAnswers();
if (!withRedis)
  console.warn(`[vitest] no Redis at ${redisUrl}: skipping the redis project (CI=true makes this a failure)`);

export default defineConfig({
  // One copy of graphql: its ESM and CJS builds in one process fail graphql's instanceof checks.
  resolve: { alias: { graphql: fileURLToPath(new URL('./node_modules/graphql/index.js', import.meta.url)) } },
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'embedded', include: ['test/**/*.test.ts'], exclude: REDIS_SUITES },
      },
      ...(withRedis
        ? [
            {
              extends: true as const,
              test: {
                name: 'redis',
                include: [...CONTRACT_SUITES, ...REDIS_SUITES],
                env: { TEST_BACKEND: 'redis', TEST_REDIS_URL: redisUrl },
              },
            },
          ]
        : []),
    ],
  },
});
