/**
 * Distributed mode on a Redis Cluster: three masters started by the test on free ports, and a
 * gateway (with its own workers) whose REDIS_URL lists the three nodes.
 */
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { type RedisTestCluster, startCluster } from '../utils/redis-server.js';
import { startTestServer, type TestServer } from '../utils/tserver.js';
import { collect, createWsClient } from '../utils/ws-clients.js';
import {
  COMPLETED,
  type CompletionEvent,
  cancelTask,
  gqlData,
  listTasks,
  primeCursor,
  startTask,
  type TaskView,
  waitForTask,
} from './support.js';

type Completed = { taskCompleted: CompletionEvent };

const USERS = ['ada', 'bo', 'cy', 'dee', 'eli', 'fay'];
const PREFIX = 'cluster-test';
const keys = new RedisKeys(PREFIX);

let cluster: RedisTestCluster;
let server: TestServer;
let admin: Cluster;

beforeAll(async () => {
  cluster = await startCluster();
  // One task at a time, so the cancellation test can tell that the cancelled run let go of its slot.
  server = await startTestServer({
    env: { REDIS_URL: cluster.url, REDIS_KEY_PREFIX: PREFIX, WORKER_CONCURRENCY: '1' },
  });
  admin = new Cluster(
    cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
  await cluster?.stop();
});

describe('a gateway on a three-master Redis Cluster (REDIS_URL lists the nodes)', () => {
  it("delivers each user's completions over graphql-ws, replays them after a cursor, and lists them with the tasks query", async () => {
    const tokens = new Map<string, string>();
    const cursors = new Map<string, string>();
    const subs = new Map<string, ReturnType<typeof collect<Completed>>>();
    for (const user of USERS) {
      const token = await server.token(user);
      tokens.set(user, token);
      const cursor = await primeCursor(server, token);
      cursors.set(user, cursor);
      subs.set(
        user,
        collect<Completed>(createWsClient(server.wsUrl, token), COMPLETED, { u: user, after: cursor }),
      );
    }

    // Each user's keys share one slot; the users are spread over more than one master.
    const slots = await admin.cluster('SLOTS');
    const ownerOf = (slot: number) => slots.find(([from, to]) => from <= slot && slot <= to)?.[2]?.[1];
    const ownerPorts = new Set<number>();
    for (const user of USERS) {
      const userKeys = [keys.events(user), keys.userIndex(user), keys.live(user), keys.task(user, 'any')];
      const userSlots = await Promise.all(userKeys.map((key) => admin.cluster('KEYSLOT', key)));
      expect(new Set(userSlots).size, `slots of ${user}'s keys`).toBe(1);
      expect(await admin.exists(keys.events(user), keys.userIndex(user))).toBe(2);
      const owner = ownerOf(userSlots[0] ?? -1);
      expect(cluster.nodes.map((node) => node.port)).toContain(owner);
      if (owner !== undefined) ownerPorts.add(owner);
    }
    expect(ownerPorts.size).toBeGreaterThan(1);

    const started = new Map<string, TaskView[]>();
    for (const user of USERS) {
      const token = tokens.get(user) ?? '';
      started.set(user, [
        await startTask(server, token, 'echo', { value: `hello ${user}` }),
        await startTask(server, token, 'sleep', { ms: 200 }),
        await startTask(server, token, 'checksum', { text: user }),
      ]);
    }

    for (const user of USERS) {
      const sub = subs.get(user);
      if (!sub) throw new Error(`no subscription for ${user}`);
      await sub.until(3, `3 completions of ${user}`);
      expect(sub.errors).toEqual([]);
      const ids = (started.get(user) ?? []).map((task) => task.id);
      const received = sub.values.map((v) => v.taskCompleted);
      expect(received.map((event) => event.task.id).sort()).toEqual([...ids].sort());
      expect(received.every((event) => event.task.userId === user && event.task.status === 'SUCCEEDED')).toBe(
        true,
      );
      expect(received.find((event) => event.task.kind === 'echo')?.task.result).toBe(`hello ${user}`);

      // Replay from the primed cursor gives the same completions in the same order, then from
      // the second one only the third.
      const token = tokens.get(user) ?? '';
      const replay = collect<Completed>(createWsClient(server.wsUrl, token), COMPLETED, {
        u: user,
        after: cursors.get(user),
      });
      await replay.until(3, `3 replayed completions of ${user}`);
      expect(
        replay.values.map((v) => [v.taskCompleted.cursor, v.taskCompleted.task.id, v.taskCompleted.replayed]),
      ).toEqual(received.map((event) => [event.cursor, event.task.id, true]));
      const tail = collect<Completed>(createWsClient(server.wsUrl, token), COMPLETED, {
        u: user,
        after: received[1]?.cursor,
      });
      await tail.until(1, `the completion after ${user}'s second cursor`);
      expect(tail.values.map((v) => v.taskCompleted.cursor)).toEqual([received[2]?.cursor]);
      replay.unsubscribe();
      tail.unsubscribe();

      // The tasks query: the three tasks and the warm-up, newest first, all SUCCEEDED.
      const listed = await listTasks(server, token, user);
      expect(listed.map((task) => task.id).slice(0, 3)).toEqual([...ids].reverse());
      expect(listed).toHaveLength(4);
      expect(listed.every((task) => task.status === 'SUCCEEDED')).toBe(true);
    }

    // A service caller lists every user's tasks across the slots.
    const service = await server.token('ops', { service: true });
    const everyone = await gqlData<{ tasks: { nodes: TaskView[] } }>(
      server,
      'query { tasks(first: 100, status: [SUCCEEDED]) { nodes { id userId } } }',
      {},
      service,
    );
    expect(new Set(everyone.tasks.nodes.map((task) => task.userId))).toEqual(new Set(USERS));
    expect(everyone.tasks.nodes).toHaveLength(USERS.length * 4);
    for (const sub of subs.values()) sub.unsubscribe();
  }, 60_000);

  it('cancels a running task through the cancellation channel on the cluster: CANCELLED is delivered and the run lets go of its worker slot', async () => {
    const token = await server.token('gus');
    const cursor = await primeCursor(server, token);
    const sub = collect<Completed>(createWsClient(server.wsUrl, token), COMPLETED, {
      u: 'gus',
      after: cursor,
    });
    const long = await startTask(server, token, 'sleep', { ms: 120_000 });
    await waitForTask(server, token, long.id, (task) => task.status === 'RUNNING', 'to be RUNNING');
    expect(await cancelTask(server, token, long.id)).toMatchObject({ status: 'CANCELLED' });
    // The only worker slot is free again only if the 2-minute run was aborted.
    const probe = await startTask(server, token, 'echo', { value: 'after the cancel' });
    await sub.until(2, 'the CANCELLED completion and the probe');
    expect(sub.values.map((v) => [v.taskCompleted.task.id, v.taskCompleted.task.status])).toEqual([
      [long.id, 'CANCELLED'],
      [probe.id, 'SUCCEEDED'],
    ]);
    sub.unsubscribe();
  });
});
