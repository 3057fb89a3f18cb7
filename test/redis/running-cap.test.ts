/**
 * MAX_RUNNING_PER_USER in Redis mode: one user's long tasks do not hold every worker slot, and a
 * user's task waits (without spending an attempt) while the user's running slots are taken.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { TaskStatus } from '../../src/tasks/task.js';
import { TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { start, untilTask, workerBackend } from './worker-backend.js';

describe('a running cap per user in Redis mode', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("should run another user's task while one user's second task waits for the user's slot", async () => {
    const backend = await workerBackend(cleanups, { maxRunningPerUser: 1 });
    await backend.startWorkers(2);
    const first = await start(backend, 'carol', 'sleep', { ms: 8_000 });
    await untilTask(backend, first.id, (task) => task.status === TaskStatus.Running, 'to run');
    const second = await start(backend, 'carol', 'sleep', { ms: 200 });
    const echo = await start(backend, 'dave', 'echo', { value: 'hello' });

    await untilTask(backend, echo.id, (task) => task.status === TaskStatus.Succeeded, 'to succeed');
    expect(await backend.tasks.get(first.id)).toMatchObject({ status: TaskStatus.Running });
    expect(await backend.tasks.get(second.id)).toMatchObject({ status: TaskStatus.Queued, attempts: 0 });

    const done = await untilTask(
      backend,
      second.id,
      (task) => task.status === TaskStatus.Succeeded,
      'to succeed',
    );
    const firstDone = await backend.tasks.get(first.id);
    expect(firstDone?.status).toBe(TaskStatus.Succeeded);
    // Carol's second task ran after her first, as its first attempt: waiting spent none.
    expect(done.startedAt).toBeGreaterThanOrEqual(firstDone?.finishedAt ?? Number.POSITIVE_INFINITY);
    expect(done.attempts).toBe(1);
  }, 40_000);

  it('should free a slot whose worker stopped renewing it once the lease runs out', async () => {
    const keyPrefix = uniquePrefix();
    const backend = await workerBackend(cleanups, { maxRunningPerUser: 1, keyPrefix });
    const redis = new Redis(TEST_REDIS_URL);
    cleanups.push(async () => {
      redis.disconnect();
    });
    // The lease of a worker killed while running one of gina's tasks: nobody renews it.
    const ghost = 'task-of-a-killed-worker';
    const expiresAt = Date.now() + 1_500;
    await redis.zadd(new RedisKeys(keyPrefix).running('gina'), expiresAt, ghost);
    await backend.startWorkers(2);

    const echo = await start(backend, 'gina', 'echo', { value: 'after the lease' });
    const done = await untilTask(
      backend,
      echo.id,
      (task) => task.status === TaskStatus.Succeeded,
      'to succeed',
    );
    expect(done.startedAt).toBeGreaterThanOrEqual(expiresAt);
    expect(await redis.zscore(new RedisKeys(keyPrefix).running('gina'), ghost)).toBeNull();
  }, 40_000);
});
