/**
 * TASK_RETENTION in Redis mode: finished tasks (hash, index entries, owner and idempotency keys)
 * and events older than the retention are purged; the rest stays, and an older cursor expires.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisRepository } from '../../src/backends/redis/redis-repository.js';
import { RedisRetention } from '../../src/backends/redis/redis-retention.js';
import { CursorExpiredError } from '../../src/tasks/errors.js';
import { newTask, type Task, TaskStatus } from '../../src/tasks/task.js';
import * as transitions from '../../src/tasks/transitions.js';
import { waitFor } from '../utils/deferred.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { start, untilTask, workerBackend } from './worker-backend.js';

const RETENTION_MS = 1_500;

describe('task retention in Redis mode', () => {
  const client = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const prefixes: string[] = [];

  afterAll(async () => {
    client.disconnect();
    for (const prefix of prefixes) await deletePrefix(TEST_REDIS_URL, prefix);
  });

  /** A store of its own (a fresh prefix), and the steps of a task's life in it. */
  function store() {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const keys = new RedisKeys(prefix);
    const repository = new RedisRepository({ client, keys, eventRetention: 1_000 });
    const retention = () => new RedisRetention({ client, keys, retentionMs: RETENTION_MS });
    const create = async (userId: string, idempotencyKey: string | null = null): Promise<Task> => {
      const [created] = await repository.createMany([
        newTask({ userId, kind: 'echo', input: { value: 1 }, external: false, idempotencyKey }),
      ]);
      if (!created) throw new Error('not created');
      return created.task;
    };
    const claim = async (task: Task): Promise<Task> => {
      const event = await repository.transition(task.id, transitions.claim(Date.now()));
      if (!event) throw new Error('not claimed');
      return event.task;
    };
    const finish = async (task: Task): Promise<Task> => {
      const running = await claim(task);
      const event = await repository.transition(
        task.id,
        transitions.succeed(running.attempts, 'done', Date.now()),
      );
      if (!event) throw new Error('not finished');
      return event.task;
    };
    return { keys, repository, retention, create, claim, finish };
  }

  it('should purge the tasks finished and the events appended before the retention, and nothing else', async () => {
    const { keys, repository, retention, create, claim, finish } = store();
    const user = 'hana';
    const old = await finish(await create(user));
    const oldKeyed = await finish(await create(user, 'order-1'));
    const stillRunning = await claim(await create(user));
    await delay(RETENTION_MS + 100);
    const cursorBeforeRecent = await repository.lastCursor(user);
    const recent = await finish(await create(user, 'order-2'));

    // Two processes sweeping at once purge each task once and fail on nothing.
    const purged = await Promise.all([retention().sweep(), retention().sweep()]);
    expect(purged[0] + purged[1]).toBe(2);

    for (const gone of [old, oldKeyed]) {
      expect(await repository.get(gone.id)).toBeNull();
      expect(await client.exists(keys.task(user, gone.id), keys.owner(gone.id))).toBe(0);
      expect(await client.zscore(keys.userIndex(user), gone.id)).toBeNull();
      expect(await client.zscore(keys.allTasks(), `${user}\n${gone.id}`)).toBeNull();
    }
    expect(await repository.findByIdempotencyKey(user, 'order-1')).toBeNull();
    expect(await client.exists(keys.idempotency(user, 'order-1'))).toBe(0);
    expect(await repository.get(stillRunning.id)).toMatchObject({ status: TaskStatus.Running });
    expect(await repository.findByIdempotencyKey(user, 'order-2')).toMatchObject({ id: recent.id });
    const listed = await repository.list({ userId: user, first: 10 });
    expect(listed.tasks.map((task) => task.id).sort()).toEqual([stillRunning.id, recent.id].sort());

    // Events before the cutoff are gone: a cursor from before them expires; a later one reads on.
    await expect(repository.readEvents(user, '0-1', { finalOnly: false, limit: 100 })).rejects.toBeInstanceOf(
      CursorExpiredError,
    );
    const kept = await repository.readEvents(user, cursorBeforeRecent, { finalOnly: false, limit: 100 });
    expect(kept.map((event) => [event.task.id, event.task.status])).toEqual([
      [recent.id, TaskStatus.Queued],
      [recent.id, TaskStatus.Running],
      [recent.id, TaskStatus.Succeeded],
    ]);
  });

  it("should keep a user's newest event however old, so the user's last cursor stays current", async () => {
    const { repository, retention, create, finish } = store();
    const user = 'ivan';
    await finish(await create(user));
    const last = await repository.lastCursor(user);
    await delay(RETENTION_MS + 100);

    expect(await retention().sweep()).toBe(1);
    expect(await repository.lastCursor(user)).toBe(last);
    expect(await repository.readEvents(user, last, { finalOnly: false, limit: 10 })).toEqual([]);
  });

  describe('in a running backend', () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it('should purge a finished task by itself once its retention is over', async () => {
      const backend = await workerBackend(cleanups, { taskRetentionMs: 1_000 });
      await backend.startWorkers(1);
      const echo = await start(backend, 'kim', 'echo', { value: 1 });
      await untilTask(backend, echo.id, (task) => task.status === TaskStatus.Succeeded, 'to succeed');
      await waitFor(async () => (await backend.tasks.get(echo.id)) === null, 'the task to be purged');
    });
  });
});
