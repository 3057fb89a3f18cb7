/**
 * Redis faults with real processes: a test-owned `redis-server` (AOF, fsync always) is stopped
 * and started again on the same port and directory while clients are subscribed and tasks run.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import {
  type ChildProcessHandle,
  type ChildServer,
  freePort,
  spawnChild,
  startChildServer,
  startChildWorker,
} from '../utils/child-server.js';
import { waitFor } from '../utils/deferred.js';
import { type RedisServer, startRedisServer } from '../utils/redis-server.js';
import {
  FINAL_STATUSES,
  listTasks,
  numsub,
  primeCursor,
  startTask,
  type TaskView,
  TrackingSubscriber,
} from './support.js';

/** Waits for `check` up to `timeoutMs`; says whether it held (the caller asserts with detail). */
async function settle(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  try {
    await waitFor(async () => (await check()) || undefined, 'settle', timeoutMs);
    return true;
  } catch {
    return false;
  }
}

const START_KEYED = `mutation($kind: String!, $input: JSON, $key: String) {
  startTask(input: { kind: $kind, input: $input, idempotencyKey: $key }) {
    id userId kind status attempts result error { code message }
  }
}`;

/**
 * Starts a task as a careful client does while Redis may be away: requests then answer
 * SERVICE_UNAVAILABLE at once, so it repeats the start with the same idempotency key until it
 * gets the task (the repeat finds the task should the failed start have stored it).
 */
async function startRetrying(
  target: ChildServer,
  token: string,
  kind: string,
  input: unknown,
  key: string,
): Promise<TaskView> {
  for (;;) {
    const response = await target.gql<{ startTask: TaskView }>(START_KEYED, { kind, input, key }, token);
    const codes = (response.errors ?? []).map((error) => error.extensions?.['code']);
    if (codes.length === 0 || codes.some((code) => code !== 'SERVICE_UNAVAILABLE')) {
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      if (!response.data) throw new Error('startTask answered no data');
      return response.data.startTask;
    }
    await delay(200);
  }
}

function count<T>(values: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

describe('a Redis restart while clients are subscribed and tasks run', () => {
  const prefix = 'faults';
  const keys = new RedisKeys(prefix);
  let server: RedisServer;
  let gateways: ChildServer[];
  let workers: ChildProcessHandle[];
  let redis: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    const env = { REDIS_URL: server.url, REDIS_KEY_PREFIX: prefix, WORKER_LOCK_MS: '2000' };
    const started = await Promise.all([
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '0' } }),
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '0' } }),
      startChildWorker({ env: { ...env, WORKER_CONCURRENCY: '4' } }),
      startChildWorker({ env: { ...env, WORKER_CONCURRENCY: '4' } }),
    ]);
    gateways = [started[0], started[1]];
    workers = [started[2], started[3]];
    redis = new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
    redis.on('error', () => {}); // refused while the server is stopped; it reconnects on its own
  }, 60_000);

  afterAll(async () => {
    redis?.disconnect();
    await Promise.all(
      [...(gateways ?? []), ...(workers ?? [])].map(async (handle) => {
        handle.kill('SIGKILL');
        await handle.waitExit();
      }),
    );
  });

  /**
   * Subscribes two clients per user (one on each gateway, resuming from a primed cursor), keeps
   * starting tasks, runs `fault` once completions flow, keeps starting tasks a little longer,
   * then checks that every task is final and every client got each completion exactly once.
   */
  async function runScenario(
    name: string,
    users: readonly string[],
    fault: (started: readonly TaskView[]) => Promise<void>,
  ) {
    const [gatewayA, gatewayB] = gateways as [ChildServer, ChildServer];
    const tokens = new Map<string, string>();
    const tokenOf = (user: string) => tokens.get(user) ?? '';
    const subscribers: { user: string; gateway: string; sub: TrackingSubscriber }[] = [];
    for (const user of users) {
      tokens.set(user, await gatewayA.token(user));
      const cursor = await primeCursor(gatewayA, tokenOf(user));
      subscribers.push(
        { user, gateway: 'A', sub: new TrackingSubscriber(gatewayA.wsUrl, tokenOf(user), user, cursor) },
        { user, gateway: 'B', sub: new TrackingSubscriber(gatewayB.wsUrl, tokenOf(user), user, cursor) },
      );
    }
    // Each user's channel has one subscriber per gateway before the first task starts.
    for (const user of users) {
      await waitFor(
        async () => (await numsub(redis, keys.live(user))) === 2,
        `both gateways on ${user}'s channel`,
      );
    }
    const gapReReads = () =>
      gateways.reduce((sum, g) => sum + g.stderr().split('redis subscriber reconnected').length - 1, 0);
    const gapReReadsBefore = gapReReads();

    // Tasks keep starting, alternating gateways, users and kinds (echo, or a short sleep).
    const started: TaskView[] = [];
    let generating = true;
    const generator = (async () => {
      for (let i = 0; generating; i++) {
        const user = users[i % users.length] ?? '';
        const gateway = i % 2 === 0 ? gatewayA : gatewayB;
        const [kind, input] =
          i % 3 === 0 ? ['echo', { value: i }] : ['sleep', { ms: [300, 800, 1_500][i % 3] }];
        started.push(await startRetrying(gateway, tokenOf(user), kind, input, `${name}-${i}`));
        await delay(30);
      }
    })();
    const received = () => Math.min(...subscribers.map(({ sub }) => sub.events.length));

    await waitFor(() => started.length >= 12 && received() >= 3, 'tasks running and completions flowing');
    const startedBeforeFault = started.length;
    await fault(started);
    const startedAfterFault = started.length;
    await waitFor(
      () => started.length >= startedAfterFault + 12,
      'more tasks started after the fault',
      30_000,
    );
    generating = false;
    await generator;

    // Every task reaches a final status.
    const finalTasks = new Map<string, TaskView>();
    const allFinal = await settle(async () => {
      for (const user of users) {
        for (const task of await listTasks(gatewayA, tokenOf(user), user)) {
          if (FINAL_STATUSES.has(task.status)) finalTasks.set(task.id, task);
        }
      }
      return started.every((task) => finalTasks.has(task.id));
    }, 60_000);
    const notFinal = started.filter((task) => !finalTasks.has(task.id)).map((task) => task.id);
    expect(allFinal, `tasks not final: ${notFinal.join(', ')}`).toBe(true);

    // Every client receives each of its user's completions (or the wait ends and the counts tell).
    const expectedOf = (user: string) =>
      started.filter((task) => task.userId === user).map((task) => task.id);
    await settle(
      () => subscribers.every(({ user, sub }) => expectedOf(user).every((id) => sub.eventsOf(id).length > 0)),
      20_000,
    );
    // A marker per user after everything: a duplicate of an earlier completion would arrive before it.
    const markers = await Promise.all(
      users.map((user) => startTask(gatewayB, tokenOf(user), 'echo', { value: 'marker' })),
    );
    const markerIds = new Set(markers.map((marker) => marker.id));
    await settle(
      () => subscribers.every(({ sub }) => markers.some((marker) => sub.eventsOf(marker.id).length > 0)),
      20_000,
    );

    const report = subscribers.map(({ user, gateway, sub }) => {
      const expected = expectedOf(user);
      const counts = count(sub.events.map((event) => event.task.id));
      return {
        client: `${user}@${gateway}`,
        expected: expected.length,
        delivered: expected.filter((id) => counts.has(id)).length,
        lost: expected.filter((id) => !counts.has(id)).length,
        duplicated: [...counts].filter(([, n]) => n > 1).length,
        replayed: sub.events.filter((event) => event.replayed).length,
        resubscriptions: sub.subscriptions - 1,
        errors: sub.errors.length,
        wrongStatus: sub.events.filter(
          (event) =>
            !markerIds.has(event.task.id) && event.task.status !== finalTasks.get(event.task.id)?.status,
        ).length,
      };
    });
    const ours = [...finalTasks.values()].filter((task) => started.some((s) => s.id === task.id));
    console.info(
      `[redis-faults: ${name}] ${started.length} tasks (${startedBeforeFault} before the fault, ${startedAfterFault - startedBeforeFault} during it), ` +
        `statuses ${JSON.stringify(Object.fromEntries(count(ours.map((t) => t.status))))}, ` +
        `attempts ${JSON.stringify(Object.fromEntries(count(ours.map((t) => t.attempts))))}, ` +
        `gap re-reads logged by the gateways: ${gapReReads() - gapReReadsBefore}\n` +
        report.map((row) => `  ${JSON.stringify(row)}`).join('\n'),
    );

    for (const row of report) {
      expect(row, `client ${row.client}`).toMatchObject({ lost: 0, duplicated: 0, wrongStatus: 0 });
      expect(row.delivered).toBe(row.expected);
    }
    // The tasks query agrees with what was started: nothing missing, nothing extra.
    for (const user of users) {
      const listed = (await listTasks(gatewayA, tokenOf(user), user)).map((task) => task.id);
      const expected = [...expectedOf(user), ...markers.filter((m) => m.userId === user).map((m) => m.id)];
      expect(listed.filter((id) => expected.includes(id)).sort()).toEqual([...expected].sort());
      // Plus the warm-up task of primeCursor.
      expect(listed.length).toBe(expected.length + 1);
    }
    await Promise.all(subscribers.map(({ sub }) => sub.close()));
  }

  it('lets every task reach a final status and every client receive each completion exactly once across a Redis stop and start on the same port and data', async () => {
    await runScenario('restart', ['ulla', 'umar', 'uwe'], async () => {
      const errorLines = (handle: ChildProcessHandle) => handle.stderr().split('"msg":"redis error"').length;
      const processes = [...gateways, ...workers];
      const errorsBefore = processes.map(errorLines);
      await server.stop();
      // Redis stays down until every process has logged three failed reconnect attempts (logged
      // at most once a second): by then their retry delays have grown to the 2 s maximum, so they
      // come back in no particular order after the start, and the tasks that finished meanwhile
      // are written and published by workers that may well reconnect before a gateway does.
      await waitFor(
        () => processes.every((handle, i) => errorLines(handle) >= (errorsBefore[i] ?? 0) + 3),
        'every gateway and worker to fail to reconnect three times',
      );
      await server.start();
    });
  }, 120_000);

  it("delivers each completion exactly once while the gateways' pub/sub connections are killed again and again", async () => {
    await runScenario('pubsub connections killed', ['vera', 'vito', 'viv'], async (started) => {
      const until = started.length + 20;
      let kills = 0;
      while (started.length < until) {
        // Only subscriber connections: workers and gateways keep writing and publishing meanwhile.
        kills += Number(await redis.client('KILL', 'TYPE', 'pubsub'));
        await delay(100);
      }
      expect(kills).toBeGreaterThan(0);
    });
  }, 120_000);
});

describe('start-up with an unreachable Redis', () => {
  it.each([
    ['the gateway (src/main.ts)', 'src/main.ts'],
    ['the worker process (src/worker.ts)', 'src/worker.ts'],
  ] as const)('makes %s exit non-zero with a message naming REDIS_URL', async (_name, entry) => {
    const closedPort = await freePort();
    const handle = await spawnChild({
      entry,
      env: {
        REDIS_URL: `redis://127.0.0.1:${closedPort}`,
        REDIS_CONNECT_TIMEOUT_MS: '1000',
        WORKER_CONCURRENCY: '1',
      },
    });
    await waitFor(() => handle.exited, `${entry} to exit`, 20_000);
    const status = await handle.waitExit();
    expect(status.signal).toBeNull();
    expect(status.code).not.toBe(0);
    expect(handle.stderr()).toContain('REDIS_URL');
    expect(handle.stderr()).toContain(`127.0.0.1:${closedPort}`);
  });
});
