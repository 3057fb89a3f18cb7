import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryCursorStore, type Task, TaskClientError } from '../../src/client/index.js';
import { waitFor } from '../utils/deferred.js';
import {
  recordCompletions,
  recordStates,
  createTestTaskClient as taskClient,
} from '../utils/task-clients.js';
import { startTcpProxy } from '../utils/tcp-proxy.js';
import { startTestServer, type TestServer } from '../utils/tserver.js';

const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** Task ids that occur more than once. */
function repeated(ids: readonly string[]): string[] {
  return ids.filter((id, index) => ids.indexOf(id) !== index);
}

describe('task client', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  async function clientFor(userId: string) {
    return taskClient({ url: server.url, token: await server.token(userId) });
  }

  describe('queries and mutations', () => {
    it('should start, read, list and cancel tasks with typed results, and reject a second cancel with CONFLICT', async () => {
      const client = await clientFor('sdk-crud');
      const kinds = await client.taskKinds();
      expect(kinds.map((kind) => kind.name)).toEqual(expect.arrayContaining(['sleep', 'echo', 'checksum']));

      const started = await client.startTask({ kind: 'sleep', input: { ms: 60_000 } });
      expect(started).toMatchObject({ userId: 'sdk-crud', kind: 'sleep', input: { ms: 60_000 } });
      expect(await client.task(started.id)).toMatchObject({ id: started.id });
      expect(await client.task('no-such-task')).toBeNull();

      const cancelled = await client.cancelTask(started.id);
      expect(cancelled).toMatchObject({ status: 'CANCELLED', error: { code: 'CANCELLED' } });
      const again = await client.cancelTask(started.id).catch((error: unknown) => error);
      expect(again).toBeInstanceOf(TaskClientError);
      expect((again as TaskClientError).code).toBe('CONFLICT');

      const page = await client.tasks({ status: ['CANCELLED'], first: 10 });
      expect(page.nodes.map((task) => task.id)).toContain(started.id);
      expect(page.pageInfo.hasNextPage).toBe(false);
    });
  });

  describe('waitForTask', () => {
    it('should resolve at once with the final state of a task that finished before the call', async () => {
      const client = await clientFor('sdk-wait-done');
      const started = await client.startTask({ kind: 'echo', input: { value: 'done already' } });
      await waitFor(
        async () => (await client.task(started.id))?.status === 'SUCCEEDED',
        'the echo task to succeed',
      );

      const final = await client.waitForTask(started.id);
      expect(final).toMatchObject({ id: started.id, status: 'SUCCEEDED', result: 'done already' });
    });

    it('should resolve with the final state when a running task completes', async () => {
      const client = await clientFor('sdk-wait-running');
      const started = await client.startTask({ kind: 'sleep', input: { ms: 600 } });
      await waitFor(async () => (await client.task(started.id))?.status === 'RUNNING', 'the task to run');

      const final = await client.waitForTask(started.id);
      expect(final).toMatchObject({
        id: started.id,
        status: 'SUCCEEDED',
        result: { sleptMs: expect.any(Number) },
      });
      expect(final.finishedAt).not.toBeNull();
    });

    it('should reject with NOT_FOUND for an unknown task, and with the reason when aborted', async () => {
      const client = await clientFor('sdk-wait-errors');
      const missing = await client.waitForTask('no-such-task').catch((error: unknown) => error);
      expect(missing).toBeInstanceOf(TaskClientError);
      expect((missing as TaskClientError).code).toBe('NOT_FOUND');

      const long = await client.startTask({ kind: 'sleep', input: { ms: 60_000 } });
      const controller = new AbortController();
      const waiting = client.waitForTask(long.id, { signal: controller.signal });
      controller.abort(new Error('gave up'));
      await expect(waiting).rejects.toThrow('gave up');
      await client.cancelTask(long.id);
    });
  });

  describe('onTaskCompleted', () => {
    it('should deliver every completion of the user exactly once, and nothing to a removed handler', async () => {
      const client = await clientFor('sdk-feed');
      const first = recordCompletions(client);
      const second = recordCompletions(client);
      const other = await clientFor('sdk-feed-other');

      const started = [
        await client.startTask({ kind: 'echo', input: { value: 1 } }),
        await client.startTask({ kind: 'sleep', input: { ms: 300 } }),
        await client.startTask({ kind: 'checksum', input: { text: 'abc' } }),
        await client.startTask({ kind: 'sleep', input: { ms: 60_000 } }),
      ];
      const [, , , toCancel] = started;
      if (!toCancel) throw new Error('no task to cancel');
      await client.cancelTask(toCancel.id);
      // Another user's completion is not this feed's business.
      const foreign = await other.startTask({ kind: 'echo', input: { value: 'not yours' } });
      await other.waitForTask(foreign.id);

      const ids = started.map((task) => task.id);
      await first.until(ids);
      // Anything still owed on the stream would come before a later completion.
      const sentinel = await client.startTask({ kind: 'echo', input: { value: 'sentinel' } });
      await first.until([sentinel.id]);

      expect(first.ids().sort()).toEqual([...ids, sentinel.id].sort());
      expect(repeated(first.ids())).toEqual([]);
      expect(second.ids()).toEqual(first.ids());
      for (const event of first.events) expect(FINAL).toContain(event.task.status);
      expect(new Set(first.events.map((event) => event.cursor)).size).toBe(first.events.length);
      expect(first.events.find((event) => event.task.id === toCancel.id)?.task.status).toBe('CANCELLED');

      // Handlers are called together: once the remaining one has the next completion, so would the removed one.
      first.stop();
      const afterStop = await client.startTask({ kind: 'echo', input: { value: 'after stop' } });
      await second.until([afterStop.id]);
      expect(first.ids()).not.toContain(afterStop.id);
      expect(client.errors).toEqual([]);
    });

    it('should deliver nothing after dispose and settle the state as offline', async () => {
      const client = await clientFor('sdk-dispose');
      const events = recordCompletions(client);
      const watcher = await clientFor('sdk-dispose');
      const watched = recordCompletions(watcher);
      const before = await client.startTask({ kind: 'echo', input: { value: 'before dispose' } });
      await events.until([before.id]);

      await client.dispose();
      expect(client.connectionState.get()).toBe('offline');
      const after = await watcher.startTask({ kind: 'echo', input: { value: 'after dispose' } });
      await watched.until([after.id]);
      expect(events.ids()).toEqual([before.id]);
      await expect(client.waitForTask(after.id)).rejects.toThrow('disposed');
    });

    it('should resume from the stored cursor: a new client with the same store gets only what the last one missed', async () => {
      const cursorStore = createMemoryCursorStore();
      const token = await server.token('sdk-store');
      const first = taskClient({ url: server.url, token, cursorStore });
      const seen = recordCompletions(first);
      const early = await first.startTask({ kind: 'echo', input: { value: 'early' } });
      await seen.until([early.id]);
      await first.dispose();

      const missed = await server.gql<{ startTask: Task }>(
        'mutation { startTask(input: { kind: "echo", input: { value: "missed" } }) { id } }',
        {},
        token,
      );
      const missedId = missed.data?.startTask.id;
      if (!missedId) throw new Error('no task started');
      const second = taskClient({ url: server.url, token, cursorStore });
      await second.waitForTask(missedId);
      const resumed = recordCompletions(second);
      await resumed.until([missedId]);
      const sentinel = await second.startTask({ kind: 'echo', input: { value: 'sentinel' } });
      await resumed.until([sentinel.id]);
      expect(resumed.ids()).toEqual([missedId, sentinel.id]);
      expect(resumed.events[0]?.replayed).toBe(true);
    });
    it('should follow the completions of the user named by userId with a service token', async () => {
      const service = taskClient({
        url: server.url,
        token: await server.token('sdk-service', { service: true }),
        userId: 'sdk-followed',
      });
      const feed = recordCompletions(service);
      // Without a stored cursor the feed follows another user from "now" (their newest cursor is not
      // exposed): start warm-up tasks for them until one arrives, so the feed is surely subscribed.
      const warmUps: string[] = [];
      await waitFor(async () => {
        if (feed.events.length > 0) return true;
        warmUps.push(
          (await service.startTask({ kind: 'echo', input: { value: 'warm-up' }, userId: 'sdk-followed' })).id,
        );
        return false;
      }, 'the feed to follow the user');
      const own = await service.startTask({ kind: 'echo', input: { value: 'for the service itself' } });
      const forUser = await service.startTask({
        kind: 'echo',
        input: { value: 'for them' },
        userId: 'sdk-followed',
      });
      expect(forUser.userId).toBe('sdk-followed');
      await service.waitForTask(own.id);
      await feed.until([forUser.id]);

      expect(feed.ids()).not.toContain(own.id);
      expect(repeated(feed.ids())).toEqual([]);
      for (const id of feed.ids()) expect([...warmUps, forUser.id]).toContain(id);
      const listed = await service.tasks({ userId: 'sdk-followed' });
      expect(listed.nodes.map((task) => task.id).sort()).toEqual([...warmUps, forUser.id].sort());
    });
  });

  describe('token refresh', () => {
    it('should reconnect with a fresh token after the server closes the socket for an expired one, delivering each completion once', async () => {
      const minted: string[] = [];
      const client = taskClient({
        url: server.url,
        getToken: async () => {
          const token = await server.token('sdk-refresh', { expiresIn: 2 });
          minted.push(token);
          return token;
        },
      });
      const states = recordStates(client);
      const feed = recordCompletions(client);
      // Finishes after the first token has expired.
      const slow = await client.startTask({ kind: 'sleep', input: { ms: 2_500 } });
      const connectedAt = await states.reach('connected');
      const lostAt = await states.reach('reconnecting', connectedAt);
      await states.reach('connected', lostAt);
      await feed.until([slow.id]);

      const later = await client.startTask({ kind: 'echo', input: { value: 'with a refreshed token' } });
      await feed.until([later.id]);
      expect(minted.length).toBeGreaterThan(1);
      expect(feed.ids()).toEqual([slow.id, later.id]);
    });
    it('should retry an HTTP request once with a fresh token when the server answers UNAUTHENTICATED', async () => {
      let calls = 0;
      const client = taskClient({
        url: server.url,
        getToken: () => {
          calls += 1;
          return server.token('sdk-http-refresh', { expiresIn: calls === 1 ? -60 : '1h' });
        },
      });
      const started = await client.startTask({ kind: 'echo', input: { value: 'with the second token' } });
      expect(started.userId).toBe('sdk-http-refresh');
      expect(calls).toBeGreaterThan(1);
    });

    it('should put the token on operations of its urql client too (as useQuery sends them), fresh after UNAUTHENTICATED', async () => {
      let calls = 0;
      const client = taskClient({
        url: server.url,
        // No WebSocket: only the HTTP operations ask for tokens.
        wsUrl: 'ws://127.0.0.1:1/graphql',
        getToken: () => {
          calls += 1;
          return server.token('sdk-urql-token', { expiresIn: calls === 1 ? -60 : '1h' });
        },
      });
      const result = await client.urql
        .query('query Me { viewer { userId } }', {}, { requestPolicy: 'network-only' })
        .toPromise();
      expect(result.error).toBeUndefined();
      expect(result.data).toMatchObject({ viewer: { userId: 'sdk-urql-token' } });
      expect(calls).toBeGreaterThan(1);
    });

    it('should keep retrying while getToken fails, and connect and deliver once it succeeds', async () => {
      let calls = 0;
      const client = taskClient({
        url: server.url,
        getToken: () => {
          calls += 1;
          if (calls <= 2) throw new Error(`token service unavailable (call ${calls})`);
          return server.token('sdk-token-outage');
        },
      });
      const states = recordStates(client);
      await states.reach('connected');
      const feed = recordCompletions(client);
      const task = await client.startTask({ kind: 'echo', input: { value: 'after the outage' } });
      await feed.until([task.id]);
      expect(calls).toBeGreaterThan(2);
      expect(client.errors.map(String).join('\n')).toContain('token service unavailable (call 2)');
    });
  });

  describe('dead server detection', () => {
    it('should notice a connection that stopped answering, reconnect, and deliver what completed meanwhile', async () => {
      const proxy = await startTcpProxy(server.port);
      const client = taskClient({
        url: server.url,
        wsUrl: `ws://127.0.0.1:${proxy.port}/graphql`,
        token: await server.token('sdk-blackhole'),
        keepAliveMs: 200,
        pongTimeoutMs: 1_000,
        connectTimeoutMs: 1_000,
      });
      const states = recordStates(client);
      const feed = recordCompletions(client);
      const before = await client.startTask({ kind: 'echo', input: { value: 'before' } });
      await feed.until([before.id]);
      const connectedAt = await states.reach('connected');

      proxy.blackhole();
      const lostAt = await states.reach('reconnecting', connectedAt);
      const during = await client.startTask({ kind: 'echo', input: { value: 'during the blackout' } });
      await waitFor(async () => (await client.task(during.id))?.status === 'SUCCEEDED', 'the task to finish');
      proxy.restore();
      await states.reach('connected', lostAt);
      await feed.until([during.id]);

      expect(feed.ids()).toEqual([before.id, during.id]);
      expect(feed.events[1]?.replayed).toBe(true);
    });
  });
});

describe('task client after CURSOR_EXPIRED (EVENT_RETENTION=3)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { EVENT_RETENTION: '3' } });
  });
  afterAll(() => server.stop());

  it('should reconcile with the tasks query, then resume live from the newest cursor', async () => {
    const token = await server.token('sdk-expired');
    const setup = taskClient({ url: server.url, token });
    const { lastEventCursor } = await server
      .gql<{ viewer: { lastEventCursor: string } }>('query { viewer { lastEventCursor } }', {}, token)
      .then((response) => response.data?.viewer ?? { lastEventCursor: '' });
    const finished: Task[] = [];
    for (const value of ['a', 'b', 'c']) {
      const task = await setup.startTask({ kind: 'echo', input: { value } });
      finished.push(await setup.waitForTask(task.id));
    }

    const cursorStore = createMemoryCursorStore();
    cursorStore.set('sdk-expired', lastEventCursor);
    const client = taskClient({ url: server.url, token, cursorStore });
    const feed = recordCompletions(client);
    const finishedIds = finished.map((task) => task.id);
    await feed.until(finishedIds, 'the reconciled completions');
    const live = await client.startTask({ kind: 'echo', input: { value: 'live' } });
    await feed.until([live.id], 'a completion after the reconciliation');

    expect(feed.ids()).toEqual([...finishedIds, live.id]);
    const reconciled = feed.events.slice(0, finishedIds.length);
    for (const event of reconciled) expect(event.replayed).toBe(true);
    // Reconciled events carry the cursor the feed resumed from, not one of their own.
    expect(new Set(reconciled.map((event) => event.cursor)).size).toBe(1);
    expect(await cursorStore.get('sdk-expired')).toBe(feed.events.at(-1)?.cursor);
    expect(client.errors).toEqual([]);
  });
});
