/**
 * A job taken from a worker while it ran it (what BullMQ's stalled-job check does once the
 * worker's lock ran out while Redis was away, and another delivery then completes the job): the
 * run's outcome stands in the store, and the worker says what happened in one warning.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { createLogger } from '../../src/logger.js';
import { TaskStatus } from '../../src/tasks/task.js';
import { waitFor } from '../utils/deferred.js';
import { TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { start, untilTask, workerBackend } from './worker-backend.js';

interface LogLine {
  level: string;
  msg: string;
  jobId?: string;
  command?: string;
  found?: string;
  err?: { message?: string };
}

describe('a job removed from under its worker', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('should keep the outcome in the store and log one warning naming the job', async () => {
    const lines: LogLine[] = [];
    const logger = createLogger('debug', (line) => lines.push(JSON.parse(line) as LogLine));
    const keyPrefix = uniquePrefix();
    const backend = await workerBackend(cleanups, { keyPrefix, logger });
    const redis = new Redis(TEST_REDIS_URL);
    cleanups.push(async () => {
      redis.disconnect();
    });
    await backend.startWorkers(1);
    const task = await start(backend, 'jun', 'sleep', { ms: 1_500 });
    await untilTask(backend, task.id, (stored) => stored.status === TaskStatus.Running, 'to run');

    // What a second delivery of the job leaves behind once it completed it: no job at all.
    const jobId = `${task.id}-v${task.version}`;
    const queue = `${new RedisKeys(keyPrefix).queuePrefix()}:tasks`;
    await redis.del(`${queue}:${jobId}`, `${queue}:${jobId}:lock`);
    await redis.lrem(`${queue}:active`, 0, jobId);

    const done = await untilTask(
      backend,
      task.id,
      (stored) => stored.status === TaskStatus.Succeeded,
      'to succeed',
    );
    expect(done.attempts).toBe(1);
    const warning = await waitFor(
      () => lines.find((line) => line.level === 'warn' && line.jobId === jobId),
      'the warning about the lost job',
    );
    expect(warning).toMatchObject({ command: 'moveToFinished', found: 'gone' });
    expect(lines.filter((line) => line.level === 'warn' && line.jobId === jobId)).toHaveLength(1);
    expect(lines.filter((line) => line.level === 'error')).toEqual([]);
  });
});
