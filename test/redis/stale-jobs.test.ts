/**
 * A job is only a pointer; a stale copy of one (a job of an earlier queued period of the task,
 * queued again after that one ended: a delayed add, a sweeper or an idempotent repeat racing the
 * worker) must neither claim a later queued period early nor start a second run of a running task.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { QUEUE_NAME } from '../../src/backends/redis/bullmq-queue.js';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { newTask, type Task, TaskStatus } from '../../src/tasks/task.js';
import { waitFor } from '../utils/deferred.js';
import { TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { start, untilTask, workerBackend } from './worker-backend.js';

describe('stale copies of a job (Redis mode)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** BullMQ's queue of the backend on `prefix`, to add jobs the way a stale copy arrives. */
  function rawQueue(prefix: string): Queue {
    const connection = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_NAME, { connection, prefix: new RedisKeys(prefix).queuePrefix() });
    cleanups.push(async () => {
      await queue.close();
      connection.disconnect();
    });
    return queue;
  }

  /** Adds a copy of the job of `queued` under another id; resolves once a worker has handled it. */
  async function addStaleCopy(queue: Queue, queued: Task): Promise<void> {
    const jobId = `${queued.id}-stale-copy`;
    await queue.add('run', { taskId: queued.id, task: queued }, { jobId, removeOnComplete: true });
    await waitFor(
      async () => (await queue.getJob(jobId)) === undefined,
      'the stale copy to be handled',
      20_000,
    );
  }

  it('should not start a second run of a task that is running', async () => {
    const keyPrefix = uniquePrefix();
    const backend = await workerBackend(cleanups, { keyPrefix });
    await backend.startWorkers(1);
    const sleep = await start(backend, 'gina', 'sleep', { ms: 2_500 });
    await untilTask(backend, sleep.id, (task) => task.status === TaskStatus.Running, 'to run');
    // A second worker process, free while the first one's only slot runs the sleep.
    const other = await workerBackend(cleanups, { keyPrefix });
    await other.startWorkers(1);

    await addStaleCopy(rawQueue(keyPrefix), sleep);

    const done = await untilTask(
      backend,
      sleep.id,
      (task) => task.status === TaskStatus.Succeeded,
      'to succeed',
    );
    expect(done.attempts).toBe(1);
  });

  it('should leave a later queued period (a retry due later) to its own job', async () => {
    const keyPrefix = uniquePrefix();
    const backend = await workerBackend(cleanups, { keyPrefix });
    await backend.startWorkers(2);
    const [created] = await backend.tasks.createMany([
      newTask({ userId: 'hugo', kind: 'echo', input: { value: 1 }, external: false }),
    ]);
    if (!created) throw new Error('not created');
    // The task moves on to a later queued period, due in a minute (as a retry with backoff would).
    const later = await backend.tasks.transition(created.task.id, (task) => ({
      ...task,
      runAt: Date.now() + 60_000,
    }));
    expect(later?.task.version).toBeGreaterThan(created.task.version);

    await addStaleCopy(rawQueue(keyPrefix), created.task);

    expect(await backend.tasks.get(created.task.id)).toMatchObject({
      status: TaskStatus.Queued,
      attempts: 0,
    });
  });
});
