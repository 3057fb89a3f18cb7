/**
 * `/metrics` scraped and parsed after a known workload, `/healthz` and `/readyz`. Runs against both
 * backends (a contract suite); every count below is exact because the server is fresh and does all
 * the work in-process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, createApp } from '../src/app.js';
import { mintToken } from '../src/auth/tokens.js';
import { createEmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { KindRegistry } from '../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../src/tasks/kinds/index.js';
import { waitFor } from './utils/deferred.js';
import { baseOf, COMPLETED, lastEventCursor, scrape, startTask, waitForFinal } from './utils/ops.js';
import { deletePrefix, TEST_BACKEND, TEST_REDIS_URL, uniquePrefix } from './utils/redis.js';
import { makeTempDir, startTestServer, TEST_SECRET, type TestServer } from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

interface CompletedData {
  taskCompleted: { cursor: string; replayed: boolean; task: { id: string; status: string } };
}

describe('/metrics after a known workload', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('serves the Prometheus text format with every service metric at zero before any work', async () => {
    const metrics = await scrape(server);
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const name of [
      'tss_websocket_connections',
      'tss_queue_depth',
      'tss_events_replayed_total',
      'tss_slow_consumer_disconnects_total',
      'tss_redis_errors_total',
      'tss_delivery_lag_seconds_count',
      'tss_connections_revoked_total',
    ]) {
      expect(metrics.has(name), name).toBe(true);
      expect(metrics.value(name), name).toBe(0);
    }
    expect(metrics.has('process_cpu_user_seconds_total')).toBe(true);
  });

  it('renders only the metrics named with ?name=, leaving unknown names out', async () => {
    const response = await fetch(
      `${baseOf(server)}/metrics?name=tss_queue_depth&name=tss_websocket_connections&name=no_such_metric`,
    );
    expect(response.status).toBe(200);
    const body = await response.text();
    const names = body
      .split('\n')
      .filter((line) => line.startsWith('# TYPE '))
      .map((line) => line.split(' ')[2]);
    expect(names.sort()).toEqual(['tss_queue_depth', 'tss_websocket_connections']);
    expect(body).toMatch(/^tss_queue_depth 0$/m);
  });

  it('counts connections, subscriptions, events published, delivered and replayed, lag, durations and auth failures exactly', async () => {
    const token = await server.token('metrics-user');
    const before = await lastEventCursor(server, token);

    // One live subscriber, then three echo tasks.
    const live = collect<CompletedData>(createWsClient(server.wsUrl, token), COMPLETED, {
      u: 'metrics-user',
    });
    await waitFor(
      async () => (await scrape(server)).value('tss_subscriptions_active', { field: 'taskCompleted' }) === 1,
      'the live subscription to be counted',
    );
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await startTask(server, token, 'echo', { value: i })).id);
    await live.until(3, 'three live completions');

    // A second subscriber resuming from before the tasks: three replayed events.
    const replay = collect<CompletedData>(createWsClient(server.wsUrl, token), COMPLETED, {
      u: 'metrics-user',
      after: before,
    });
    await replay.until(3, 'three replayed completions');
    expect(replay.values.every((v) => v.taskCompleted.replayed)).toBe(true);

    // taskUpdated of a finished task: its state once, then it completes.
    const followed = collect(
      createWsClient(server.wsUrl, token),
      'subscription($id: ID!) { taskUpdated(id: $id) { id status } }',
      {
        id: ids[0],
      },
    );
    await followed.done;

    // Refused tokens: malformed and expired over HTTP, malformed over WebSocket.
    expect((await server.gql('{ viewer { userId } }', {}, 'not-a-jwt')).status).toBe(401);
    const expired = await mintToken(TEST_SECRET, 'metrics-user', { expiresIn: -60 });
    expect((await server.gql('{ viewer { userId } }', {}, expired)).status).toBe(401);
    const refused = await openRawSocket(server.wsUrl);
    refused.send({ type: 'connection_init', payload: { authorization: 'Bearer junk' } });
    expect((await refused.closed).code).toBe(4403);

    const metrics = await waitFor(async () => {
      const scraped = await scrape(server);
      return scraped.value('tss_websocket_connections') === 2 && scraped;
    }, 'two open connections');
    for (const status of ['QUEUED', 'RUNNING', 'SUCCEEDED']) {
      expect(metrics.value('tss_events_published_total', { status }), status).toBe(3);
      expect(metrics.value('tss_task_status_transitions_total', { status }), status).toBe(3);
    }
    expect(metrics.value('tss_events_delivered_total', { field: 'taskCompleted' })).toBe(6);
    expect(metrics.value('tss_events_delivered_total', { field: 'taskUpdated' })).toBe(1);
    expect(metrics.value('tss_events_replayed_total')).toBe(3);
    expect(metrics.value('tss_delivery_lag_seconds_count')).toBe(3);
    expect(metrics.value('tss_delivery_lag_seconds_bucket', { le: '+Inf' })).toBe(3);
    expect(metrics.value('tss_task_duration_seconds_count', { kind: 'echo', status: 'SUCCEEDED' })).toBe(3);
    expect(metrics.value('tss_subscriptions_active', { field: 'taskCompleted' })).toBe(2);
    expect(metrics.value('tss_subscriptions_active', { field: 'taskUpdated' })).toBe(0);
    expect(metrics.value('tss_auth_failures_total', { transport: 'http', reason: 'invalid' })).toBe(1);
    expect(metrics.value('tss_auth_failures_total', { transport: 'http', reason: 'expired' })).toBe(1);
    expect(metrics.value('tss_auth_failures_total', { transport: 'ws', reason: 'invalid' })).toBe(1);
    expect(metrics.value('tss_queue_depth')).toBe(0);
    expect(metrics.value('tss_redis_errors_total')).toBe(0);
    expect(metrics.value('tss_slow_consumer_disconnects_total')).toBe(0);

    live.unsubscribe();
    await waitFor(
      async () => (await scrape(server)).value('tss_subscriptions_active', { field: 'taskCompleted' }) === 1,
      'the ended subscription to leave the gauge',
    );
  });

  it('counts each limit refusal under its name', async () => {
    const token = await server.token('metrics-limits');
    await server.gql(
      `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: viewer { userId }`).join(' ')} }`,
      {},
      token,
    );
    expect((await scrape(server)).value('tss_limit_rejections_total', { limit: 'query_aliases' })).toBe(1);
  });
});

describe('tss_queue_depth (WORKER_CONCURRENCY=0)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { WORKER_CONCURRENCY: '0' } });
  });
  afterAll(() => server.stop());

  it('counts the tasks waiting for a worker, and not external ones', async () => {
    const token = await server.token('depth-user');
    await startTask(server, token, 'echo', { value: 1 });
    await startTask(server, token, 'sleep', { ms: 10 });
    await startTask(server, token, 'external', { job: 'elsewhere' });
    expect((await scrape(server)).value('tss_queue_depth')).toBe(2);
  });
});

describe('/healthz and /readyz', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('answers /healthz 200 and /readyz 200 naming every part it checked', async () => {
    const health = await fetch(`${baseOf(server)}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${baseOf(server)}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe('ready');
    expect(Object.values(body.checks).every((check) => check === 'ok')).toBe(true);
    expect(Object.keys(body.checks)).toEqual(expect.arrayContaining(['store', 'bus']));
  });

  it('answers /readyz 503 naming the part that failed, while /healthz and GraphQL still answer', async () => {
    const dataDir = makeTempDir();
    const config = loadConfig({
      PORT: '0',
      AUTH_JWT_SECRET: TEST_SECRET,
      DATA_DIR: dataDir,
      LOG_LEVEL: 'silent',
    });
    const logger = createLogger('silent');
    const embedded = createEmbeddedBackend({
      dataDir,
      eventRetention: config.eventRetention,
      kinds: new KindRegistry(BUILT_IN_KINDS),
      logger,
    });
    const app = buildApp({
      config,
      logger,
      backend: {
        ...embedded,
        probe: async () => [
          { part: 'store', ok: true },
          { part: 'bus', ok: false, detail: 'bus unreachable (test)' },
        ],
      },
    });
    const { url } = await app.start();
    try {
      const base = new URL(url).origin;
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({
        status: 'unavailable',
        failed: ['bus'],
        checks: { store: 'ok', bus: 'bus unreachable (test)' },
      });
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const token = await mintToken(TEST_SECRET, 'probe-user');
      const task = await startTask({ url, gql: gqlAt(url) }, token, 'echo', { value: 1 });
      expect((await waitForFinal({ url, gql: gqlAt(url) }, token, task.id)).status).toBe('SUCCEEDED');
    } finally {
      await app.stop();
    }
  });
});

describe('logs (LOG_LEVEL=debug)', () => {
  it('writes one JSON line per connection opened and closed, per request and per task transition, with request and user ids, and never a token', async () => {
    const lines: Record<string, unknown>[] = [];
    const raw: string[] = [];
    const redisPrefix = TEST_BACKEND === 'redis' ? uniquePrefix() : undefined;
    const config = loadConfig({
      PORT: '0',
      AUTH_JWT_SECRET: TEST_SECRET,
      DATA_DIR: makeTempDir(),
      LOG_LEVEL: 'debug',
      ...(redisPrefix ? { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: redisPrefix } : {}),
    });
    const logger = createLogger('debug', (line) => {
      raw.push(line);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    const app = await createApp({ config, logger });
    const { url } = await app.start();
    try {
      const token = await mintToken(TEST_SECRET, 'log-user');
      const target = { url, gql: gqlAt(url) };
      const socket = await openRawSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws', {
        'x-request-id': 'req-ws-1',
      });
      await socket.init({ authorization: `Bearer ${token}` });
      // A per-operation header too, as GraphiQL sends it.
      socket.send({
        id: 'q',
        type: 'subscribe',
        payload: {
          query: '{ viewer { userId } }',
          extensions: { headers: { Authorization: `Bearer ${token}` } },
        },
      });
      await socket.next((m) => m['id'] === 'q' && m['type'] === 'next', 'an answer');
      socket.socket.close(1000);
      await socket.closed;
      const task = await startTask(target, token, 'echo', { value: 'logged' });
      await waitForFinal(target, token, task.id);
      await waitFor(() => lines.some((line) => line['msg'] === 'websocket closed'), 'the close line');

      const find = (msg: string) => lines.filter((line) => line['msg'] === msg);
      expect(find('websocket connected')).toEqual([
        expect.objectContaining({ level: 'debug', requestId: 'req-ws-1', userId: 'log-user' }),
      ]);
      expect(find('websocket closed')).toEqual([
        expect.objectContaining({ requestId: 'req-ws-1', userId: 'log-user', code: 1000 }),
      ]);
      expect(find('http request')).toContainEqual(
        expect.objectContaining({ userId: 'log-user', status: 200, requestId: expect.any(String) }),
      );
      expect(find('task transition').filter((line) => line['taskId'] === task.id)).toEqual([
        expect.objectContaining({ userId: 'log-user', kind: 'echo', from: null, to: 'QUEUED' }),
        expect.objectContaining({ from: 'QUEUED', to: 'RUNNING' }),
        expect.objectContaining({ from: 'RUNNING', to: 'SUCCEEDED' }),
      ]);
      for (const line of lines) expect(typeof line['time']).toBe('string');
      expect(raw.filter((line) => line.includes(token))).toEqual([]);
    } finally {
      await app.stop();
      if (redisPrefix) await deletePrefix(TEST_REDIS_URL, redisPrefix);
    }
  });

  it('redacts authorization, tokens and connectionParams wherever a caller logs them', () => {
    const written: string[] = [];
    const logger = createLogger('info', (line) => written.push(line));
    logger.info('careless', {
      authorization: 'Bearer secret-1',
      token: 'secret-2',
      connectionParams: { authorization: 'Bearer secret-3' },
      request: { headers: { authorization: 'Bearer secret-4', host: 'example' } },
      payload: { extensions: { headers: { Authorization: 'Bearer secret-5' } } },
    });
    expect(written).toHaveLength(1);
    expect(written[0]).not.toMatch(/secret-/);
    expect(JSON.parse(written[0] ?? '{}')).toMatchObject({
      level: 'info',
      msg: 'careless',
      authorization: '[redacted]',
      request: { headers: { authorization: '[redacted]', host: 'example' } },
    });
  });
});

/** A minimal `gql` for an app started outside the test-server factory. */
function gqlAt(url: string) {
  return async <T>(query: string, variables?: Record<string, unknown>, token?: string | null) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ query, variables }),
    });
    return { status: response.status, ...((await response.json()) as { data?: T; errors?: never[] }) };
  };
}
