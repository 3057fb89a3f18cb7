/**
 * Distributed mode across real processes: two gateways (`src/main.ts`, no workers of their own)
 * and one worker process (`src/worker.ts`), all on the local Redis under one unique key prefix.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import {
  type ChildProcessHandle,
  type ChildServer,
  startChildServer,
  startChildWorker,
} from '../utils/child-server.js';
import { waitFor } from '../utils/deferred.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { collect, createWsClient } from '../utils/ws-clients.js';
import {
  COMPLETED,
  type CompletionEvent,
  cancelTask,
  getTask,
  lastEventCursor,
  numsub,
  primeCursor,
  startTask,
  waitForTask,
} from './support.js';

type Completed = { taskCompleted: CompletionEvent };

const prefix = uniquePrefix();
const keys = new RedisKeys(prefix);
const redisEnv = { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, WORKER_LOCK_MS: '2000' };

let gatewayA: ChildServer;
let gatewayB: ChildServer;
/** One task at a time, so a task it is still running keeps the next one waiting. */
let worker: ChildProcessHandle;
const processes: ChildProcessHandle[] = [];
let redis: Redis;

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  [gatewayA, gatewayB, worker] = await Promise.all([
    startChildServer({ env: { ...redisEnv, WORKER_CONCURRENCY: '0' } }),
    startChildServer({ env: { ...redisEnv, WORKER_CONCURRENCY: '0' } }),
    startChildWorker({ env: { ...redisEnv, WORKER_CONCURRENCY: '1' } }),
  ]);
  processes.push(gatewayA, gatewayB, worker);
}, 60_000);

afterAll(async () => {
  await Promise.all(
    processes.map(async (handle) => {
      handle.kill('SIGKILL');
      await handle.waitExit();
    }),
  );
  redis?.disconnect();
  await deletePrefix(TEST_REDIS_URL, prefix);
});

/** Waits until gateway-side listening on `userId`'s channel is in effect (one gateway subscribed). */
async function untilListening(userId: string, subscribers = 1): Promise<void> {
  await waitFor(
    async () => (await numsub(redis, keys.live(userId))) === subscribers,
    `${subscribers} subscriber(s) on ${keys.live(userId)}`,
  );
}

describe('two gateways and a worker process on one Redis', () => {
  it('delivers live to a client on gateway A the completion of a task started through gateway B and run by the worker process', async () => {
    const token = await gatewayA.token('ann');
    const sub = collect<Completed>(createWsClient(gatewayA.wsUrl, token), COMPLETED, { u: 'ann' });
    await untilListening('ann');

    const task = await startTask(gatewayB, token, 'echo', { value: 'started on B' });
    await sub.until(1, 'the completion on gateway A');

    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => v.taskCompleted)).toEqual([
      {
        cursor: expect.any(String),
        replayed: false,
        task: expect.objectContaining({
          id: task.id,
          status: 'SUCCEEDED',
          result: 'started on B',
          attempts: 1,
        }),
      },
    ]);
    // Neither gateway runs tasks (WORKER_CONCURRENCY=0): the worker process ran it. And only
    // gateway A, where ann is subscribed, listened on her channel (NUMSUB was 1, not 2).
    sub.unsubscribe();
  });

  it('cancels through gateway A a sleep that the worker process is running: CANCELLED, the run is aborted and never succeeds', async () => {
    const token = await gatewayA.token('cat');
    const sub = collect<Completed>(createWsClient(gatewayA.wsUrl, token), COMPLETED, { u: 'cat' });
    await untilListening('cat');

    const long = await startTask(gatewayB, token, 'sleep', { ms: 120_000 });
    await waitForTask(
      gatewayA,
      token,
      long.id,
      (task) => task.status === 'RUNNING',
      'to be RUNNING in the worker',
    );
    const cancelled = await cancelTask(gatewayA, token, long.id);
    expect(cancelled).toMatchObject({ id: long.id, status: 'CANCELLED', error: { code: 'CANCELLED' } });

    // The worker runs one task at a time: this echo can only run once the 2-minute sleep's run
    // has been aborted by the cancellation that crossed from gateway A to the worker process.
    const probe = await startTask(gatewayA, token, 'echo', { value: 'after the cancel' });
    await sub.until(2, 'the cancellation and the probe completion');

    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => [v.taskCompleted.task.id, v.taskCompleted.task.status])).toEqual([
      [long.id, 'CANCELLED'],
      [probe.id, 'SUCCEEDED'],
    ]);
    expect(await getTask(gatewayB, token, long.id)).toMatchObject({ status: 'CANCELLED', result: null });
    sub.unsubscribe();
  });

  it("keeps gateway A on a user's channel while that user has a subscription there (PUBSUB NUMSUB 1) and leaves it after the last one ends (0)", async () => {
    const token = await gatewayA.token('dora');
    const channel = keys.live('dora');
    expect(await numsub(redis, channel)).toBe(0);

    // Both resume from the log's start, so neither depends on being live before the task completes.
    const after = await lastEventCursor(gatewayA, token);
    const first = collect<Completed>(createWsClient(gatewayA.wsUrl, token), COMPLETED, { u: 'dora', after });
    await untilListening('dora');
    const second = collect<Completed>(createWsClient(gatewayA.wsUrl, token), COMPLETED, { u: 'dora', after });
    const one = await startTask(gatewayB, token, 'echo', { value: 1 });
    await first.until(1, 'the first completion on the first subscription');
    await second.until(1, 'the first completion on the second subscription');
    // Two subscriptions of the same user on one gateway: one Redis subscription.
    expect(await numsub(redis, channel)).toBe(1);

    first.unsubscribe();
    const two = await startTask(gatewayB, token, 'echo', { value: 2 });
    await second.until(2, 'the second completion on the remaining subscription');
    expect(await numsub(redis, channel)).toBe(1);
    expect(second.values.map((v) => v.taskCompleted.task.id)).toEqual([one.id, two.id]);

    second.unsubscribe();
    await untilListening('dora', 0);
  });

  it('completes a task exactly once, on attempt 2, when its worker process is SIGKILLed mid-run and a second worker takes over', async () => {
    const token = await gatewayA.token('finn');
    const resumeFrom = await primeCursor(gatewayA, token);
    const sub = collect<Completed>(createWsClient(gatewayA.wsUrl, token), COMPLETED, {
      u: 'finn',
      after: resumeFrom,
    });

    const task = await startTask(gatewayB, token, 'sleep', { ms: 3_000 });
    await waitForTask(
      gatewayA,
      token,
      task.id,
      (t) => t.status === 'RUNNING' && t.attempts === 1,
      'to be RUNNING',
    );
    worker.kill('SIGKILL');
    expect((await worker.waitExit()).signal).toBe('SIGKILL');

    const second = await startChildWorker({ env: { ...redisEnv, WORKER_CONCURRENCY: '1' } });
    processes.push(second);
    await sub.until(1, 'the completion after the stalled job was recovered');
    // A marker task after it: once its completion arrives, anything about the first task
    // (a second completion included) would have arrived before it on this ordered stream.
    const marker = await startTask(gatewayB, token, 'echo', { value: 'marker' });
    await sub.until(2, 'the marker completion');

    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => v.taskCompleted)).toEqual([
      {
        cursor: expect.any(String),
        replayed: false,
        task: expect.objectContaining({ id: task.id, status: 'SUCCEEDED', attempts: 2 }),
      },
      expect.objectContaining({ task: expect.objectContaining({ id: marker.id, status: 'SUCCEEDED' }) }),
    ]);

    // The user's log agrees: replaying from before the task yields one completion of it.
    const replay = collect<Completed>(createWsClient(gatewayB.wsUrl, token), COMPLETED, {
      u: 'finn',
      after: resumeFrom,
    });
    await replay.until(2, 'the replayed completions');
    expect(replay.values.map((v) => [v.taskCompleted.task.id, v.taskCompleted.replayed])).toEqual([
      [task.id, true],
      [marker.id, true],
    ]);
    expect(await getTask(gatewayB, token, task.id)).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    sub.unsubscribe();
    replay.unsubscribe();
  }, 60_000);
});
