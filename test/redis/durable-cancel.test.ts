/**
 * Cancellation that does not depend on the pub/sub message: the task's CANCELLED status in the
 * store is the mark, and a worker reads the stored status of its runs periodically.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TaskStatus } from '../../src/tasks/task.js';
import * as transitions from '../../src/tasks/transitions.js';
import { start, untilTask, workerBackend } from './worker-backend.js';

describe('durable cancellation in Redis mode', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('should stop a run cancelled in the store whose cancellation message never came, and free its slot', async () => {
    const backend = await workerBackend(cleanups);
    await backend.startWorkers(1);
    const sleep = await start(backend, 'erin', 'sleep', { ms: 60_000 });
    await untilTask(backend, sleep.id, (task) => task.status === TaskStatus.Running, 'to run');

    // What cancelTask writes, without the message it then publishes: as if it were lost.
    const cancelled = await backend.tasks.transition(
      sleep.id,
      transitions.cancel({ code: 'CANCELLED', message: 'cancelled by erin' }, Date.now()),
    );
    expect(cancelled?.task.status).toBe(TaskStatus.Cancelled);

    // The only slot comes free: a task queued behind the sleep runs.
    const echo = await start(backend, 'erin', 'echo', { value: 'next' });
    const done = await untilTask(
      backend,
      echo.id,
      (task) => task.status === TaskStatus.Succeeded,
      'to succeed',
    );
    expect(done.result).toBe('next');
    expect(await backend.tasks.get(sleep.id)).toMatchObject({ status: TaskStatus.Cancelled, attempts: 1 });
  });

  it('should stop a run whose task another worker resumed as its next attempt', async () => {
    const backend = await workerBackend(cleanups);
    await backend.startWorkers(1);
    const sleep = await start(backend, 'frank', 'sleep', { ms: 60_000 });
    const running = await untilTask(
      backend,
      sleep.id,
      (task) => task.status === TaskStatus.Running,
      'to run',
    );

    // What a second worker does with a job it took over from a worker it believed dead.
    await backend.tasks.transition(sleep.id, transitions.resume(running.attempts, Date.now()));

    const echo = await start(backend, 'frank', 'echo', { value: 'next' });
    await untilTask(backend, echo.id, (task) => task.status === TaskStatus.Succeeded, 'to succeed');
    // The first run wrote nothing over the second attempt.
    expect(await backend.tasks.get(sleep.id)).toMatchObject({ status: TaskStatus.Running, attempts: 2 });
  });
});
