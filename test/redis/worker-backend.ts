/**
 * A Redis backend with workers, built in-process for the worker suites (durable cancellation,
 * running cap, retention), and the few steps those suites take on it.
 */
import { createRedisBackend } from '../../src/backends/redis/redis-backend.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { KindRegistry } from '../../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../../src/tasks/kinds/index.js';
import type { Backend } from '../../src/tasks/ports.js';
import { type Json, newTask, type Task } from '../../src/tasks/task.js';
import { waitFor } from '../utils/deferred.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';

/** A Redis backend on a fresh prefix, torn down after each test. */
export async function workerBackend(
  cleanups: (() => Promise<void>)[],
  options: { maxRunningPerUser?: number; taskRetentionMs?: number; keyPrefix?: string; logger?: Logger } = {},
): Promise<Backend> {
  const keyPrefix = options.keyPrefix ?? uniquePrefix();
  const backend = await createRedisBackend({
    url: TEST_REDIS_URL,
    keyPrefix,
    eventRetention: 1_000,
    kinds: new KindRegistry(BUILT_IN_KINDS),
    logger: createLogger('silent'),
    // Locks of 2 s: runs are checked in the store every second.
    lockDurationMs: 2_000,
    ...options,
  });
  cleanups.push(async () => {
    await backend.close();
    await deletePrefix(TEST_REDIS_URL, keyPrefix);
  });
  return backend;
}

/** Stores a task and queues it, as the service does. */
export async function start(backend: Backend, userId: string, kind: string, input: Json): Promise<Task> {
  const [created] = await backend.tasks.createMany([newTask({ userId, kind, input, external: false })]);
  if (!created) throw new Error('not created');
  await backend.queue.enqueue([created.task]);
  return created.task;
}

/** Waits until the stored task satisfies `check`. */
export function untilTask(backend: Backend, id: string, check: (task: Task) => boolean, what: string) {
  return waitFor(
    async () => {
      const task = await backend.tasks.get(id);
      return task !== null && check(task) && task;
    },
    `task ${id} ${what}`,
    20_000,
  );
}
