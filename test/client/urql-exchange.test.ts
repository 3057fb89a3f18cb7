import { Client, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient, type Client as WsClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type CursorStore,
  createMemoryCursorStore,
  resumableSubscriptionsExchange,
} from '../../src/client/index.js';
import { startChildServer } from '../utils/child-server.js';
import { waitFor } from '../utils/deferred.js';
import { getTask, lastEventCursor, startTask, waitForFinal } from '../utils/ops.js';
import { startTcpProxy } from '../utils/tcp-proxy.js';
import { makeTempDir, startTestServer, type TestServer } from '../utils/tserver.js';

/** The app's own document, not the SDK's: the exchange works with any selection that has `cursor`. */
const COMPLETIONS = gql<
  {
    taskCompleted: {
      cursor: string;
      replayed: boolean;
      task: { id: string; status: string; attempts: number };
    };
  },
  { userId: string; after?: string | null }
>`
  subscription Completions($userId: ID!, $after: String) {
    taskCompleted(userId: $userId, after: $after) {
      cursor
      replayed
      task {
        id
        status
        attempts
        finishedAt
      }
    }
  }
`;

interface Received {
  readonly cursor: string;
  readonly replayed: boolean;
  readonly id: string;
  readonly status: string;
  readonly attempts: number;
}

/**
 * A plain @urql/core app as its docs show it: graphql-ws retrying forever, the exchange first.
 * Returns the client, its graphql-ws client and what the subscription received.
 */
function plainUrqlApp(options: {
  httpUrl: string;
  wsUrl: string;
  token: string;
  cursorStore: CursorStore;
  /** graphql-ws's reconnect attempts before it fails its subscriptions. @default Infinity */
  retryAttempts?: number;
}) {
  const ws: WsClient = createClient({
    url: options.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${options.token}` },
    retryAttempts: options.retryAttempts ?? Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: () => new Promise((resolve) => setTimeout(resolve, 200)),
    keepAlive: 500,
  });
  const errors: unknown[] = [];
  const client = new Client({
    url: options.httpUrl,
    preferGetMethod: false,
    fetchOptions: { headers: { authorization: `Bearer ${options.token}` } },
    exchanges: [
      resumableSubscriptionsExchange({
        cursorStore: options.cursorStore,
        onError: (error) => errors.push(error),
      }),
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({
            unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink),
          }),
        }),
      }),
      fetchExchange,
    ],
  });
  const received: Received[] = [];
  const follow = (userId: string, after: string | null) =>
    client.subscription(COMPLETIONS, { userId, after }).subscribe((result) => {
      if (result.error) errors.push(result.error);
      const event = result.data?.taskCompleted;
      if (event) received.push({ cursor: event.cursor, replayed: event.replayed, ...event.task });
    });
  const until = (ids: readonly string[], what = 'the completions') =>
    waitFor(() => ids.every((id) => received.some((event) => event.id === id)), what, 20_000);
  return { client, ws, errors, received, follow, until };
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('resumableSubscriptionsExchange in a plain @urql/core client across kill -9 and a restart', () => {
  it('should deliver every completion once: before the crash, finished while it was away, and interrupted', async () => {
    const dataDir = makeTempDir('tss-urql-restart-');
    const env = { WORKER_CONCURRENCY: '2', MAX_RUNNING_PER_USER: '2' };
    const first = await startChildServer({ dataDir, env });
    // The WebSocket goes through a proxy that keeps the app away from the restarted server until
    // the queued tasks finished there: they can only reach the app by resuming from its cursor.
    const proxy = await startTcpProxy(first.port);
    const user = 'urql-restart';
    const token = await first.token(user);
    const app = plainUrqlApp({
      httpUrl: first.url,
      wsUrl: `ws://127.0.0.1:${proxy.port}/graphql`,
      token,
      cursorStore: createMemoryCursorStore(),
    });
    cleanups.push(() => app.ws.dispose());
    // From the newest cursor, as the schema advises: nothing started from here on can be missed.
    const subscription = app.follow(user, await lastEventCursor(first, token));
    cleanups.push(() => subscription.unsubscribe());
    const before = await startTask(first, token, 'echo', { value: 'before the crash' });
    await app.until([before.id]);

    const sleeps = [
      await startTask(first, token, 'sleep', { ms: 1_500 }),
      await startTask(first, token, 'sleep', { ms: 1_500 }),
    ];
    const queued = [
      await startTask(first, token, 'echo', { value: 'queued 1' }),
      await startTask(first, token, 'echo', { value: 'queued 2' }),
    ];
    for (const task of sleeps) {
      await waitFor(
        async () => (await getTask(first, token, task.id)).status === 'RUNNING',
        `task ${task.id} to run`,
      );
    }
    first.kill('SIGKILL');
    await first.waitExit();

    proxy.refuse();
    const second = await startChildServer({ dataDir, port: first.port, env });
    cleanups.push(() => second.kill('SIGTERM'));
    for (const task of queued) await waitForFinal(second, token, task.id);
    proxy.restore();
    await app.until(
      [...sleeps, ...queued].map((task) => task.id),
      'the completions owed after the restart',
    );
    const sentinel = await startTask(second, token, 'echo', { value: 'after the restart' });
    await app.until([sentinel.id], 'a completion after the restart');

    const ids = app.received.map((event) => event.id);
    expect(new Set(ids).size).toBe(ids.length);
    const all = await second.gql<{ tasks: { nodes: { id: string; status: string }[] } }>(
      '{ tasks(first: 100) { nodes { id status } } }',
      {},
      token,
    );
    const tasks = all.data?.tasks.nodes ?? [];
    expect(tasks.filter((task) => !['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(task.status))).toEqual([]);
    expect([...ids].sort()).toEqual(tasks.map((task) => task.id).sort());
    // Finished while the app was away: from the log, resumed from the app's cursor.
    for (const task of queued)
      expect(app.received.find((event) => event.id === task.id)?.replayed).toBe(true);
    // Interrupted by the crash and run again after the restart.
    for (const task of sleeps) {
      expect(app.received.find((event) => event.id === task.id)).toMatchObject({
        status: 'SUCCEEDED',
        attempts: 2,
      });
    }
  }, 60_000);
});

describe('resumableSubscriptionsExchange when graphql-ws gives up on a subscription', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('should keep the operation open and subscribe again from its cursor after the error that ended it', async () => {
    const user = 'urql-gives-up';
    const token = await server.token(user);
    const proxy = await startTcpProxy(server.port);
    // No reconnect of its own: a lost socket fails the subscription with an error result.
    const app = plainUrqlApp({
      httpUrl: server.url,
      wsUrl: `ws://127.0.0.1:${proxy.port}/graphql`,
      token,
      cursorStore: createMemoryCursorStore(),
      retryAttempts: 0,
    });
    cleanups.push(() => app.ws.dispose());
    const subscription = app.follow(user, await lastEventCursor(server, token));
    cleanups.push(() => subscription.unsubscribe());
    const first = await startTask(server, token, 'echo', { value: 'before the cut' });
    await app.until([first.id]);

    proxy.blackhole();
    const missed = await startTask(server, token, 'echo', { value: 'while cut' });
    await waitForFinal(server, token, missed.id);
    proxy.restore();
    await app.until([missed.id], 'the completion missed while the socket was cut');
    const later = await startTask(server, token, 'echo', { value: 'after' });
    await app.until([later.id], 'a completion after the new subscription');

    expect(app.received.map((event) => event.id)).toEqual([first.id, missed.id, later.id]);
    // The error that ended the first subscription was handed on; nothing else went wrong.
    expect(app.errors.length).toBeGreaterThan(0);
  });
});

describe('resumableSubscriptionsExchange with an expired cursor (EVENT_RETENTION=3)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { EVENT_RETENTION: '3' } });
  });
  afterAll(() => server.stop());

  it('should hand on the finished tasks as replayed events instead of CURSOR_EXPIRED, then continue live', async () => {
    const user = 'urql-expired';
    const token = await server.token(user);
    const viewer = await server.gql<{ viewer: { lastEventCursor: string } }>(
      '{ viewer { lastEventCursor } }',
      {},
      token,
    );
    const finished: string[] = [];
    for (const value of ['a', 'b', 'c', 'd']) {
      const task = await startTask(server, token, 'echo', { value });
      await waitForFinal(server, token, task.id);
      finished.push(task.id);
    }
    // The store's cursor predates the retained log.
    const cursorStore = createMemoryCursorStore();
    cursorStore.set(user, viewer.data?.viewer.lastEventCursor ?? '');
    const app = plainUrqlApp({ httpUrl: server.url, wsUrl: server.wsUrl, token, cursorStore });
    cleanups.push(() => app.ws.dispose());
    const subscription = app.follow(user, null);
    cleanups.push(() => subscription.unsubscribe());
    await app.until(finished, 'the reconciled completions');
    const live = await startTask(server, token, 'echo', { value: 'live' });
    await app.until([live.id], 'a completion after the reconciliation');

    expect(app.received.map((event) => event.id)).toEqual([...finished, live.id]);
    expect(app.received.slice(0, finished.length).every((event) => event.replayed)).toBe(true);
    // CURSOR_EXPIRED is the exchange's to handle: the app saw no error.
    expect(app.errors).toEqual([]);
    expect(cursorStore.get(user)).toBe(app.received.at(-1)?.cursor);
  });

  it('should recover when graphql-ws re-sends a cursor that expired meanwhile: the error urql merges with the last event is not taken for it', async () => {
    const user = 'urql-expired-midstream';
    const token = await server.token(user);
    const proxy = await startTcpProxy(server.port);
    const app = plainUrqlApp({
      httpUrl: server.url,
      wsUrl: `ws://127.0.0.1:${proxy.port}/graphql`,
      token,
      cursorStore: createMemoryCursorStore(),
    });
    cleanups.push(() => app.ws.dispose());
    const subscription = app.follow(user, await lastEventCursor(server, token));
    cleanups.push(() => subscription.unsubscribe());
    const first = await startTask(server, token, 'echo', { value: 'before the cut' });
    await app.until([first.id]);

    // Nothing reaches the app while more completions than the log keeps happen; restoring cuts the
    // socket, and graphql-ws re-sends the subscription with the (now expired) last cursor.
    proxy.blackhole();
    const missed: string[] = [];
    for (const value of ['a', 'b', 'c', 'd']) {
      const task = await startTask(server, token, 'echo', { value });
      await waitForFinal(server, token, task.id);
      missed.push(task.id);
    }
    proxy.restore();
    await app.until(missed, 'the completions missed while the socket was cut');
    const later = await startTask(server, token, 'echo', { value: 'after the reconnect' });
    await app.until([later.id], 'a completion after the reconciliation');

    expect(app.received.map((event) => event.id)).toEqual([first.id, ...missed, later.id]);
    expect(app.errors).toEqual([]);
  });
});
