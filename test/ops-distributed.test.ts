/**
 * Operations in distributed mode, across real processes on one Redis: a gateway drains while
 * another serves its clients, a worker process drains, revocation and the startTask rate limit
 * span gateways, and /readyz follows Redis going away and coming back. Runs in the redis project.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, createApp } from '../src/app.js';
import { mintToken } from '../src/auth/tokens.js';
import { loadConfig } from '../src/config.js';
import { type ChildServer, freePort, startChildServer, startChildWorker } from './utils/child-server.js';
import { waitFor } from './utils/deferred.js';
import { extensionsOf, getTask, lastEventCursor, scrape, startTask, waitForFinal } from './utils/ops.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from './utils/redis.js';
import { type RedisServer, startRedisServer } from './utils/redis-server.js';
import { ResumingSubscriber } from './utils/resuming-subscriber.js';
import { makeTempDir, TEST_SECRET } from './utils/tserver.js';
import { openRawSocket } from './utils/ws-clients.js';

const prefixes: string[] = [];
afterAll(async () => {
  for (const prefix of prefixes) await deletePrefix(TEST_REDIS_URL, prefix);
});

/** Environment of the processes of one deployment: the test Redis under a fresh prefix. */
function deployment(extra: Record<string, string> = {}): Record<string, string> {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  return { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix, WORKER_LOCK_MS: '5000', ...extra };
}

async function readyz(port: number): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: response.status, body: await response.json() };
}

describe('a gateway draining while another serves', () => {
  let gatewayA: ChildServer;
  let gatewayB: ChildServer;
  beforeAll(async () => {
    // Both of the user's sleeps run on gateway A at once: no per-user cap below its two slots.
    const env = deployment({ DRAIN_GRACE_MS: '60000', LOG_LEVEL: 'info', MAX_RUNNING_PER_USER: '2' });
    [gatewayA, gatewayB] = await Promise.all([
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '2' } }),
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '1' } }),
    ]);
  }, 60_000);

  it('closes its sockets with 1001; the client resumes on the other gateway and receives every completion once, the running tasks finishing within the grace', async () => {
    const token = await gatewayA.token('moving-user');
    const subscriber = new ResumingSubscriber(token, 'moving-user', await lastEventCursor(gatewayA, token));
    subscriber.connect(gatewayA.wsUrl);
    const echo = await startTask(gatewayA, token, 'echo', { value: 'before' });
    await subscriber.until([echo.id], 'a completion through gateway A');
    // Long enough that gateway A is still draining (not gone) when its readiness is read below,
    // however slowly the steps in between run on a loaded machine.
    const sleeps = [
      await startTask(gatewayA, token, 'sleep', { ms: 6_000 }),
      await startTask(gatewayA, token, 'sleep', { ms: 6_000 }),
    ];
    for (const task of sleeps) {
      await waitFor(
        async () => (await getTask(gatewayA, token, task.id)).status === 'RUNNING',
        'the sleeps to run',
      );
    }

    gatewayA.kill('SIGTERM');
    expect(await subscriber.closeOf(0, 'the socket on A to close')).toBe(1001);
    subscriber.connect(gatewayB.wsUrl);
    expect((await readyz(gatewayA.port)).body).toEqual({ status: 'draining' });
    expect((await readyz(gatewayB.port)).status).toBe(200);

    await subscriber.until(
      sleeps.map((task) => task.id),
      'the completions of the tasks running during the drain',
    );
    expect(await gatewayA.waitExit()).toEqual({ code: 0, signal: null });
    const after = await startTask(gatewayB, token, 'echo', { value: 'after' });
    await subscriber.until([after.id], 'a completion after the drain');

    const ids = subscriber.ids();
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual([echo.id, ...sleeps.map((task) => task.id), after.id].sort());
    for (const task of sleeps)
      expect(await waitForFinal(gatewayB, token, task.id)).toMatchObject({ attempts: 1 });
    expect(subscriber.errors).toEqual([]);
  });
});

describe('a worker process draining', () => {
  it('stops taking tasks, answers /readyz 503 on WORKER_METRICS_PORT, finishes its running task and exits 0', async () => {
    const env = deployment();
    const gateway = await startChildServer({ env: { ...env, WORKER_CONCURRENCY: '0' } });
    const metricsPort = await freePort();
    const worker = await startChildWorker({
      env: {
        ...env,
        WORKER_CONCURRENCY: '1',
        DRAIN_GRACE_MS: '60000',
        WORKER_METRICS_PORT: String(metricsPort),
      },
    });
    expect((await readyz(metricsPort)).status).toBe(200);
    const token = await gateway.token('worker-drain');
    const task = await startTask(gateway, token, 'sleep', { ms: 2_000 });
    await waitFor(
      async () => (await getTask(gateway, token, task.id)).status === 'RUNNING',
      'the sleep to run',
    );

    worker.kill('SIGTERM');
    await waitFor(async () => (await readyz(metricsPort)).status === 503, 'the worker to report draining');
    expect(await worker.waitExit()).toEqual({ code: 0, signal: null });
    expect(await waitForFinal(gateway, token, task.id)).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    gateway.kill('SIGTERM');
    expect((await gateway.waitExit()).code).toBe(0);
  });
});

describe('across gateways', () => {
  let gatewayA: ChildServer;
  let gatewayB: ChildServer;
  beforeAll(async () => {
    const env = deployment({ RATE_LIMIT_START_PER_MINUTE: '5' });
    [gatewayA, gatewayB] = await Promise.all([startChildServer({ env }), startChildServer({ env })]);
  }, 60_000);

  it("revokeUserConnections on one gateway closes the user's sockets on every gateway with 4403, counts them all, and no one else's", async () => {
    const alice = await gatewayA.token('everywhere-alice');
    const bob = await gatewayA.token('everywhere-bob');
    const service = await gatewayA.token('revoker', { service: true });
    const onA = await openRawSocket(gatewayA.wsUrl);
    const onB = await openRawSocket(gatewayB.wsUrl);
    const bobOnB = await openRawSocket(gatewayB.wsUrl);
    await onA.init({ authorization: `Bearer ${alice}` });
    await onB.init({ authorization: `Bearer ${alice}` });
    await bobOnB.init({ authorization: `Bearer ${bob}` });

    const revoked = await gatewayA.gql<{ revokeUserConnections: number }>(
      'mutation($u: ID!) { revokeUserConnections(userId: $u) }',
      { u: 'everywhere-alice' },
      service,
    );
    expect(revoked.data?.revokeUserConnections).toBe(2);
    expect((await onA.closed).code).toBe(4403);
    expect((await onB.closed).code).toBe(4403);
    bobOnB.send({ id: 'q', type: 'subscribe', payload: { query: '{ viewer { userId } }' } });
    const answer = await bobOnB.next((m) => m['id'] === 'q' && m['type'] === 'next', 'an answer on B');
    expect(answer['payload']).toEqual({ data: { viewer: { userId: 'everywhere-bob' } } });
    bobOnB.socket.close();
  });

  it("counts a user's startTask calls on every gateway against one bucket in Redis", async () => {
    const token = await gatewayA.token('shared-rate');
    const START = 'mutation { startTask(input: { kind: "echo", input: { value: 1 } }) { id } }';
    for (const gateway of [gatewayA, gatewayB, gatewayA, gatewayB, gatewayA]) {
      expect((await gateway.gql(START, {}, token)).errors).toBeUndefined();
    }
    for (const gateway of [gatewayB, gatewayA]) {
      const refused = await gateway.gql(START, {}, token);
      expect(refused.status).toBe(429);
      expect(extensionsOf(refused.errors?.[0])['code']).toBe('RATE_LIMITED');
    }
    const other = await gatewayB.token('shared-rate-other');
    expect((await gatewayB.gql(START, {}, other)).errors).toBeUndefined();
  });
});

describe('/readyz while Redis is away', () => {
  let redis: RedisServer;
  let app: App;
  let base: string;
  beforeAll(async () => {
    redis = await startRedisServer();
    const config = loadConfig({
      PORT: '0',
      AUTH_JWT_SECRET: TEST_SECRET,
      DATA_DIR: makeTempDir(),
      LOG_LEVEL: 'silent',
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: uniquePrefix(),
    });
    app = await createApp({ config });
    base = new URL((await app.start()).url).origin;
  }, 30_000);
  afterAll(async () => {
    if (!redis.running) await redis.start();
    await app.stop();
  });

  it('answers 503 naming store, bus and queue while Redis is stopped, counts Redis errors, and 200 once it is back', async () => {
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    await redis.stop();
    const down = await waitFor(async () => {
      const response = await fetch(`${base}/readyz`);
      return response.status === 503 && ((await response.json()) as { failed: string[] });
    }, '/readyz to report Redis gone');
    expect(down.failed.sort()).toEqual(['bus', 'queue', 'store']);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await waitFor(
      async () => (await scrape({ url: base })).value('tss_redis_errors_total') > 0,
      'Redis errors counted',
    );

    await redis.start();
    await waitFor(async () => (await fetch(`${base}/readyz`)).status === 200, '/readyz to recover', 30_000);
    const token = await mintToken(TEST_SECRET, 'redis-back');
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ viewer { userId } }' }),
    });
    expect(response.status).toBe(200);
  });
});
