/**
 * The enqueue outbox against the real Redis: a start whose job add fails (a key BullMQ's add
 * needs holds a value of the wrong type, as in the issue) or whose gateway stops between storing
 * the task and adding its job leaves no task QUEUED for ever. A repeat with the same idempotency
 * key queues it, the sweeper queues a keyed one by itself, and a key-less one never runs.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Viewer } from '../../src/auth/viewer.js';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { createRedisBackend } from '../../src/backends/redis/redis-backend.js';
import { createLogger } from '../../src/logger.js';
import { KindRegistry } from '../../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../../src/tasks/kinds/index.js';
import type { Backend } from '../../src/tasks/ports.js';
import { newTask, type Task } from '../../src/tasks/task.js';
import { TaskService } from '../../src/tasks/task-service.js';
import { waitFor } from '../utils/deferred.js';
import { freshUser } from '../utils/in-process-app.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';

const kinds = new KindRegistry(BUILT_IN_KINDS);
const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(() => {
  redis.disconnect();
});

interface Setup {
  readonly backend: Backend;
  readonly service: TaskService;
  readonly keys: RedisKeys;
  /** Makes BullMQ's add fail (WRONGTYPE) until {@link fixQueue}. */
  breakQueue(): Promise<void>;
  fixQueue(): Promise<void>;
}

/** A backend with two workers on a fresh prefix, its outbox swept every 200 ms after `graceMs`. */
async function setup(graceMs: number): Promise<Setup> {
  const keyPrefix = uniquePrefix();
  const keys = new RedisKeys(keyPrefix);
  const backend = await createRedisBackend({
    url: TEST_REDIS_URL,
    keyPrefix,
    eventRetention: 1_000,
    kinds,
    logger: createLogger('silent'),
    commandTimeoutMs: 2_000,
    outboxGraceMs: graceMs,
    outboxSweepMs: 200,
  });
  cleanups.push(async () => {
    await backend.close();
    await deletePrefix(TEST_REDIS_URL, keyPrefix);
  });
  await backend.startWorkers(2);
  const service = new TaskService(backend, kinds, createLogger('silent'));
  // The queue's meta hash: every add reads it, so a string there makes each add fail.
  const meta = `${keys.queuePrefix()}:tasks:meta`;
  return {
    backend,
    service,
    keys,
    breakQueue: async () => {
      await redis.set(meta, 'not a hash');
    },
    fixQueue: async () => {
      await redis.del(meta);
    },
  };
}

function viewerOf(userId: string): Viewer {
  return { userId, roles: [], isService: false, expiresAt: null, issuedAt: null };
}

function untilTask(backend: Backend, id: string, check: (task: Task) => boolean, what: string) {
  return waitFor(
    async () => {
      const task = await backend.tasks.get(id);
      return task !== null && check(task) && task;
    },
    `task ${id} ${what}`,
    15_000,
  );
}

/** The only task of `userId`. */
async function onlyTaskOf(backend: Backend, userId: string): Promise<Task> {
  const { tasks } = await backend.tasks.list({ userId, first: 10 });
  expect(tasks).toHaveLength(1);
  const [task] = tasks;
  if (!task) throw new Error('no task');
  return task;
}

describe('a start whose job add fails', () => {
  it('should run the task when the start is repeated with the same idempotency key', async () => {
    // The sweeper waits a minute: only the repeat can queue the task here.
    const { backend, service, breakQueue, fixQueue } = await setup(60_000);
    const user = freshUser('outbox-repeat');
    await breakQueue();
    const args = { kind: 'echo', input: { value: 'order-1' }, idempotencyKey: 'order-1' };
    await expect(service.start(viewerOf(user), args)).rejects.toThrow(/WRONGTYPE/);
    const stored = await backend.tasks.findByIdempotencyKey(user, 'order-1');
    expect(stored).toMatchObject({ status: 'QUEUED' });
    await fixQueue();

    const repeated = await service.start(viewerOf(user), args);
    expect(repeated.id).toBe(stored?.id);
    const done = await untilTask(backend, repeated.id, (task) => task.status === 'SUCCEEDED', 'to succeed');
    expect(done).toMatchObject({ result: 'order-1', attempts: 1 });
  });

  it('should let the sweeper queue a task with an idempotency key within a few seconds, unrepeated', async () => {
    const { backend, service, breakQueue, fixQueue } = await setup(1_000);
    const user = freshUser('outbox-keyed');
    await breakQueue();
    const args = { kind: 'echo', input: { value: 'order-2' }, idempotencyKey: 'order-2' };
    await expect(service.start(viewerOf(user), args)).rejects.toThrow();
    await fixQueue();

    const stored = await onlyTaskOf(backend, user);
    const done = await untilTask(backend, stored.id, (task) => task.status === 'SUCCEEDED', 'to succeed');
    expect(done).toMatchObject({ result: 'order-2', attempts: 1 });
  });

  it('should never run a task without an idempotency key, and fail it as START_FAILED', async () => {
    const { backend, service, breakQueue, fixQueue } = await setup(1_000);
    const user = freshUser('outbox-keyless');
    await breakQueue();
    await expect(service.start(viewerOf(user), { kind: 'echo', input: { value: 'lost' } })).rejects.toThrow();
    await fixQueue();

    const stored = await onlyTaskOf(backend, user);
    const failed = await untilTask(backend, stored.id, (task) => task.status !== 'QUEUED', 'to leave QUEUED');
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 0, result: null, startedAt: null });
    expect(failed.error?.code).toBe('START_FAILED');
  });
});

describe('a gateway that stops between storing tasks and queueing them', () => {
  it('should have the sweeper queue the keyed task and fail the key-less one', async () => {
    const { backend } = await setup(1_000);
    const user = freshUser('outbox-crash');
    // Stored as a start stores them; the gateway "dies" before its enqueue.
    const keyed = newTask({
      userId: user,
      kind: 'echo',
      input: { value: 'k' },
      external: false,
      idempotencyKey: 'k',
    });
    const keyless = newTask({ userId: user, kind: 'echo', input: { value: 'n' }, external: false });
    const created = await backend.tasks.createMany([keyed, keyless]);
    expect(created.map((outcome) => outcome.created)).toEqual([true, true]);

    const ran = await untilTask(backend, keyed.id, (task) => task.status === 'SUCCEEDED', 'to succeed');
    expect(ran.result).toBe('k');
    const failed = await untilTask(backend, keyless.id, (task) => task.status === 'FAILED', 'to fail');
    expect(failed).toMatchObject({ attempts: 0, error: { code: 'START_FAILED' } });
  });
});

describe('the outbox on the ordinary path', () => {
  it('should drop the entries of started tasks and leave alone a task whose job waits, whatever its entry says', async () => {
    const { backend, service, keys } = await setup(500);
    const user = freshUser('outbox-ordinary');
    await backend.stopWorkers();
    const waiting = await service.start(viewerOf(user), { kind: 'echo', input: { value: 'w' } });
    await waitFor(async () => (await redis.zcard(keys.outbox())) === 0, 'the outbox to be empty');

    // An entry whose drop was lost: the sweeper finds the job waiting and only drops the entry.
    await redis.zadd(keys.outbox(), Date.now() - 10_000, `${user}\n${waiting.id}`);
    await waitFor(async () => (await redis.zcard(keys.outbox())) === 0, 'the sweeper to drop the entry');
    expect(await backend.tasks.get(waiting.id)).toMatchObject({ status: 'QUEUED', version: 1 });
  });
});
