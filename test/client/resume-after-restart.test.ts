import { describe, expect, it } from 'vitest';
import { type Task, TaskClientError } from '../../src/client/index.js';
import { startChildServer } from '../utils/child-server.js';
import { waitFor } from '../utils/deferred.js';
import {
  recordCompletions,
  recordStates,
  createTestTaskClient as taskClient,
} from '../utils/task-clients.js';
import { startTcpProxy } from '../utils/tcp-proxy.js';
import { makeTempDir } from '../utils/tserver.js';

const FINAL = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

describe('task client across a server restart (kill -9)', () => {
  it('should deliver every completion exactly once: those before the crash, those finished before it reconnected, and the interrupted ones', async () => {
    const dataDir = makeTempDir('tss-sdk-restart-');
    // Both sleeps of the one user run at once (MAX_RUNNING_PER_USER would hold the second back).
    const env = { WORKER_CONCURRENCY: '2', MAX_RUNNING_PER_USER: '2' };
    const first = await startChildServer({ dataDir, env });
    // The WebSocket goes through a proxy, to keep the SDK away from the restarted server until the
    // queued tasks have finished there; HTTP goes straight to the server.
    const proxy = await startTcpProxy(first.port);
    const client = taskClient({
      url: first.url,
      wsUrl: `ws://127.0.0.1:${proxy.port}/graphql`,
      token: await first.token('sdk-restart'),
      keepAliveMs: 200,
      pongTimeoutMs: 1_000,
    });
    const states = recordStates(client);
    const feed = recordCompletions(client);
    const before = await client.startTask({ kind: 'echo', input: { value: 'before the crash' } });
    await feed.until([before.id]);
    const connectedAt = await states.reach('connected');

    // Two sleeps take both workers; the echoes wait behind them.
    const interrupted = [
      await client.startTask({ kind: 'sleep', input: { ms: 1_500 } }),
      await client.startTask({ kind: 'sleep', input: { ms: 1_500 } }),
    ];
    const queued = [
      await client.startTask({ kind: 'echo', input: { value: 'queued 1' } }),
      await client.startTask({ kind: 'echo', input: { value: 'queued 2' } }),
    ];
    for (const task of interrupted) {
      await waitFor(async () => (await client.task(task.id))?.status === 'RUNNING', `task ${task.id} to run`);
    }

    first.kill('SIGKILL');
    await first.waitExit();
    const lostAt = await states.reach('reconnecting', connectedAt);
    const refused = await client
      .startTask({ kind: 'echo', input: { value: 'nobody home' } })
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TaskClientError);
    expect((refused as TaskClientError).code).toBeNull();
    expect(feed.ids()).toEqual([before.id]);

    // Same port and data: the SDK reconnects to the URLs it knows, once the queued tasks are done.
    proxy.refuse();
    const second = await startChildServer({ dataDir, port: first.port, env });
    const token = await second.token('sdk-restart');
    for (const task of queued) {
      await waitFor(async () => {
        const response = await second.gql<{ task: Task | null }>(
          'query($id: ID!) { task(id: $id) { status } }',
          { id: task.id },
          token,
        );
        return response.data?.task?.status === 'SUCCEEDED';
      }, `queued task ${task.id} to succeed after the restart`);
    }
    proxy.restore();
    await states.reach('connected', lostAt);
    const expected = [before, ...interrupted, ...queued].map((task) => task.id);
    await feed.until(expected, 'the completions owed after the restart');
    // Anything still owed would come before a completion started now.
    const sentinel = await client.startTask({ kind: 'echo', input: { value: 'after the restart' } });
    await feed.until([sentinel.id]);

    const all: Task[] = (await client.tasks({ first: 100 })).nodes;
    expect(all.filter((task) => !FINAL.includes(task.status))).toEqual([]);
    expect(feed.ids().sort()).toEqual(all.map((task) => task.id).sort());
    expect(new Set(feed.ids()).size).toBe(feed.ids().length);
    for (const task of interrupted) {
      expect(feed.events.find((event) => event.task.id === task.id)?.task).toMatchObject({
        status: 'SUCCEEDED',
        attempts: 2,
      });
    }
    // These finished before the SDK could reconnect: they come from the log.
    for (const task of queued) {
      expect(feed.events.find((event) => event.task.id === task.id)?.replayed).toBe(true);
    }
    // connected -> reconnecting -> connected, in that order.
    expect(states.states[connectedAt]).toBe('connected');
    expect(lostAt).toBeGreaterThan(connectedAt);
    expect(states.states.indexOf('connected', lostAt)).toBeGreaterThan(lostAt);
  }, 45_000);
});
