import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisRepository } from '../../src/backends/redis/redis-repository.js';
import { newTask, type Task } from '../../src/tasks/task.js';
import * as transitions from '../../src/tasks/transitions.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';

type Script = (...args: (string | number)[]) => Promise<unknown>;

/**
 * ioredis re-sends a command whose reply a dropped connection lost. These tests run every write
 * script twice, as such a re-send would, and keep only the second reply.
 */
describe('scripts re-sent after a lost reply', () => {
  const prefix = uniquePrefix();
  const client = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  let repository: RedisRepository;

  beforeAll(() => {
    repository = new RedisRepository({ client, keys: new RedisKeys(prefix), eventRetention: 100 });
    const scripts = client as unknown as Record<'tssCreateTask' | 'tssTransitionTask', Script>;
    for (const name of ['tssCreateTask', 'tssTransitionTask'] as const) {
      const once = scripts[name].bind(client);
      scripts[name] = async (...args) => {
        await once(...args);
        return once(...args);
      };
    }
  });
  afterAll(async () => {
    client.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  const resentTask = (idempotencyKey: string | null): Task =>
    newTask({ userId: 'resent', kind: 'echo', input: { value: 1 }, external: false, idempotencyKey });

  it('should report a task created by the first run of a re-sent create as created, and find it by id', async () => {
    const task = resentTask('resent-key');
    const [outcome] = await repository.createMany([task]);
    const { created, task: stored } = outcome ?? { created: false, task: null };
    expect(created).toBe(true);
    expect(stored?.id).toBe(task.id);
    expect(await repository.get(task.id)).toMatchObject({ id: task.id, status: 'QUEUED' });
  });

  it('should return the event of a re-sent transition that the first run applied, and log it once', async () => {
    const [created] = await repository.createMany([resentTask(null)]);
    if (!created) throw new Error('not created');
    const { task } = created;
    const after = await repository.lastCursor(task.userId);
    const event = await repository.transition(task.id, transitions.claim(Date.now()));
    expect(event?.task).toMatchObject({ id: task.id, status: 'RUNNING', attempts: 1 });
    const logged = await repository.readEvents(task.userId, after, { finalOnly: false, limit: 10 });
    expect(logged.map((e) => e.cursor)).toEqual([event?.cursor]);
    expect(await repository.get(task.id)).toMatchObject({ status: 'RUNNING', attempts: 1, version: 2 });
  });
});
