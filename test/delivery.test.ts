import type { Client as WsClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { buildApp } from '../src/app.js';
import { mintToken } from '../src/auth/tokens.js';
import { createEmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { KindRegistry } from '../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../src/tasks/kinds/index.js';
import { defineKind, TaskFailure } from '../src/tasks/kinds/kind.js';
import type { Backend, TaskRepository } from '../src/tasks/ports.js';
import { createDeferred, waitFor } from './utils/deferred.js';
import { TEST_BACKEND } from './utils/redis.js';
import { makeTempDir, postGraphQL, startTestServer, TEST_SECRET, type TestServer } from './utils/tserver.js';
import { createUrqlClient } from './utils/urql.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

type Status = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';
const FINAL_STATUSES: readonly Status[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

interface TaskView {
  id: string;
  kind: string;
  status: Status;
  progress: number;
  result: unknown;
  error: { code: string; message: string } | null;
}
interface CompletedEvent {
  cursor: string;
  replayed: boolean;
  task: TaskView;
}
interface CompletedData {
  taskCompleted: CompletedEvent;
}
interface UpdatedData {
  taskUpdated: TaskView;
}
interface GraphQLErrorShape {
  message: string;
  extensions?: Record<string, unknown>;
}

const TASK_FIELDS = 'id kind status progress result error { code message }';
const COMPLETED = `subscription Completed($userId: ID!, $after: String) {
  taskCompleted(userId: $userId, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;
const UPDATED = `subscription Updated($id: ID!) { taskUpdated(id: $id) { ${TASK_FIELDS} } }`;
const START = `mutation Start($kind: String!, $input: JSON) {
  startTask(input: { kind: $kind, input: $input }) { id status }
}`;

/** Fails at once, without retries: the FAILED path of the runner. */
const failingKind = defineKind({
  name: 'test-fail',
  description: 'Always fails, not retryable.',
  input: z.strictObject({}),
  async handler() {
    throw new TaskFailure('DELIBERATE', 'failed on purpose', false);
  },
});

/**
 * Orders cursors as this service issues them: Redis `ms-seq` stream ids, or the embedded log's
 * per-user numbers (base64url of `e:<n>`).
 */
function compareCursors(a: string, b: string): number {
  const parse = (cursor: string) => {
    const embedded = /^e:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString());
    const match = embedded ?? /^(\d+)-(\d+)$/.exec(cursor);
    if (!match?.[1]) throw new Error(`unexpected cursor form ${JSON.stringify(cursor)}`);
    return [BigInt(match[1]), BigInt(match[2] ?? '0')] as const;
  };
  const [a1, a2] = parse(a);
  const [b1, b2] = parse(b);
  if (a1 !== b1) return a1 < b1 ? -1 : 1;
  if (a2 !== b2) return a2 < b2 ? -1 : 1;
  return 0;
}

function expectStrictlyIncreasing(cursors: readonly string[]): void {
  for (let i = 1; i < cursors.length; i++) {
    const previous = cursors[i - 1] ?? '';
    const current = cursors[i] ?? '';
    expect(compareCursors(previous, current), `cursor ${current} after ${previous}`).toBeLessThan(0);
  }
}

function codesOf(errors: readonly unknown[]): unknown[] {
  return errors.map((error) => {
    const shape = error as GraphQLErrorShape;
    return shape.extensions?.['code'];
  });
}

/** A small client for one user on one server. */
class Actor {
  constructor(
    readonly server: TestServer,
    readonly userId: string,
    readonly token: string,
  ) {}

  static async create(server: TestServer, userId: string, options: { service?: boolean } = {}) {
    return new Actor(server, userId, await server.token(userId, options));
  }

  /** Runs an operation and fails the test on any GraphQL error. */
  async gql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await this.server.gql<T>(query, variables, this.token);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    if (!response.data) throw new Error('no data');
    return response.data;
  }

  async start(kind: string, input: Record<string, unknown> = {}): Promise<string> {
    const data = await this.gql<{ startTask: { id: string } }>(START, { kind, input });
    return data.startTask.id;
  }

  async task(id: string): Promise<TaskView> {
    const data = await this.gql<{ task: TaskView | null }>(
      `query Task($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`,
      { id },
    );
    if (!data.task) throw new Error(`no task ${id}`);
    return data.task;
  }

  waitFinal(id: string): Promise<TaskView> {
    return waitFor(async () => {
      const task = await this.task(id);
      return FINAL_STATUSES.includes(task.status) && task;
    }, `task ${id} to finish`);
  }

  async lastEventCursor(): Promise<string | null> {
    const data = await this.gql<{ viewer: { lastEventCursor: string | null } }>(
      'query { viewer { lastEventCursor } }',
    );
    return data.viewer.lastEventCursor;
  }

  /** Ids of the user's tasks in a final status, oldest first. */
  async finalTaskIds(): Promise<string[]> {
    const data = await this.gql<{ tasks: { nodes: { id: string }[]; pageInfo: { hasNextPage: boolean } } }>(
      `query Final($userId: ID) {
        tasks(userId: $userId, status: [SUCCEEDED, FAILED, CANCELLED], first: 100) {
          nodes { id } pageInfo { hasNextPage }
        }
      }`,
      { userId: this.userId },
    );
    expect(data.tasks.pageInfo.hasNextPage).toBe(false);
    return data.tasks.nodes.map((node) => node.id).reverse();
  }

  /** Runs an echo task to its end; returns its id and the cursor of its completion. */
  async runEcho(value: unknown): Promise<{ id: string; cursor: string }> {
    const id = await this.start('echo', { value });
    await this.waitFinal(id);
    const cursor = await this.lastEventCursor();
    if (cursor === null) throw new Error('no cursor after a finished task');
    return { id, cursor };
  }

  ws(options: Parameters<typeof createWsClient>[2] = {}): WsClient {
    return createWsClient(this.server.wsUrl, this.token, options);
  }
}

/**
 * A live-only `taskCompleted` subscription whose listener is known to be registered: probe tasks
 * are started until one of them arrives (a probe that finished before the listener was registered
 * is simply never seen). Returns the probe ids so a test can leave them out.
 */
async function liveCompletions(actor: Actor, ws: WsClient = actor.ws()) {
  const sub = collect<CompletedData>(ws, COMPLETED, { userId: actor.userId });
  const probes = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    const probe = await actor.start('echo', { value: 'probe' });
    probes.add(probe);
    try {
      await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === probe), 'a probe', 1_000);
      break;
    } catch (error) {
      if (attempt >= 10) throw error;
    }
  }
  return { ...sub, probes };
}

/** Waits until the subscription ended (completed or errored), without hanging the file if it never does. */
async function ended(sub: { readonly completed: boolean }): Promise<void> {
  await waitFor(() => sub.completed, 'the subscription to end');
}

function eventsOf(values: readonly CompletedData[]): CompletedEvent[] {
  return values.map((value) => value.taskCompleted);
}

/** Points where a test holds the store's reads, to open the seam between log and live bus wide. */
interface ReadHooks {
  /** Before `readEvents` touches the log. */
  beforeReadEvents?: (() => Promise<void>) | undefined;
  /** After `readEvents` read the log, before its result is returned. */
  afterReadEvents?: (() => Promise<void>) | undefined;
  /** After `get` read a task, before its result is returned. */
  afterGet?: (() => Promise<void>) | undefined;
}

/**
 * A one-shot gate for a {@link ReadHooks} slot: `entered` resolves when the read reaches it, and
 * the read goes on once `open()` is called.
 */
function gate(hooks: ReadHooks, slot: keyof ReadHooks) {
  const entered = createDeferred();
  const release = createDeferred();
  hooks[slot] = async () => {
    hooks[slot] = undefined;
    entered.resolve();
    await release.promise;
  };
  return { entered: entered.promise, open: () => release.resolve() };
}

/**
 * A real server on the embedded backend whose repository reads can be held by the test (see
 * {@link ReadHooks}); everything else is the production code path.
 */
async function startGatedServer(hooks: ReadHooks): Promise<TestServer> {
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
  const inner = embedded.tasks;
  const tasks = new Proxy(inner, {
    get(target, property) {
      if (property === 'readEvents') {
        return async (...args: Parameters<TaskRepository['readEvents']>) => {
          await hooks.beforeReadEvents?.();
          const events = await target.readEvents(...args);
          await hooks.afterReadEvents?.();
          return events;
        };
      }
      if (property === 'get') {
        return async (id: string) => {
          const task = await target.get(id);
          await hooks.afterGet?.();
          return task;
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const backend: Backend = { ...embedded, tasks };
  const app = buildApp({ config, backend, logger });
  const { url, port } = await app.start();
  let stopped: Promise<void> | undefined;
  return {
    app,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    port,
    dataDir,
    token: (userId, options) => mintToken(TEST_SECRET, userId, options),
    gql: (query, variables, token) => postGraphQL(url, query, variables, token),
    stop() {
      stopped ??= app.stop();
      return stopped;
    },
  };
}

describe('taskCompleted', () => {
  let server: TestServer;
  let service: Actor;
  beforeAll(async () => {
    server = await startTestServer({ kinds: [failingKind] });
    service = await Actor.create(server, 'ops-service', { service: true });
  });
  afterAll(() => server.stop());

  describe('live', () => {
    it('pushes every final status of the user, and only final ones, to each of their connections and to no one else', async () => {
      const alice = await Actor.create(server, 'live-alice');
      const bob = await Actor.create(server, 'live-bob');
      const first = await liveCompletions(alice);
      const second = await liveCompletions(alice);
      const other = await liveCompletions(bob);

      const succeeded = await alice.start('echo', { value: { n: 1 } });
      const failedByRunner = await alice.start('test-fail');
      const failedExternally = await alice.start('external', { job: 'a' });
      await service.gql(
        'mutation($id: ID!) { failTask(id: $id, message: "disk full", code: "DISK_FULL") { id } }',
        {
          id: failedExternally,
        },
      );
      const cancelled = await alice.start('sleep', { ms: 60_000 });
      await alice.gql('mutation($id: ID!) { cancelTask(id: $id) { id } }', { id: cancelled });
      // Non-final changes of an external task: QUEUED -> RUNNING -> progress, then its completion.
      const progressed = await alice.start('external', { job: 'b' });
      for (const progress of [0.25, 0.5]) {
        await service.gql(
          'mutation($id: ID!, $p: Float!) { reportTaskProgress(id: $id, progress: $p) { id } }',
          {
            id: progressed,
            p: progress,
          },
        );
      }
      await service.gql('mutation($id: ID!) { completeTask(id: $id, result: { ok: true }) { id } }', {
        id: progressed,
      });

      const expected = new Map<string, Partial<TaskView>>([
        [succeeded, { status: 'SUCCEEDED', result: { n: 1 } }],
        [failedByRunner, { status: 'FAILED', error: { code: 'DELIBERATE', message: 'failed on purpose' } }],
        [failedExternally, { status: 'FAILED', error: { code: 'DISK_FULL', message: 'disk full' } }],
        [cancelled, { status: 'CANCELLED' }],
        [progressed, { status: 'SUCCEEDED', result: { ok: true }, progress: 1 }],
      ]);
      const probes = new Set([...first.probes, ...second.probes, ...other.probes]);
      const connections = [first, second];
      for (const sub of connections) {
        await waitFor(
          () => [...expected.keys()].every((id) => sub.values.some((v) => v.taskCompleted.task.id === id)),
          'every completion on each connection',
        );
      }
      // Started after everything above finished: once it arrives, nothing else can still be on its way.
      const sentinel = await alice.start('echo', { value: 'sentinel' });
      for (const sub of connections) {
        await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === sentinel), 'the sentinel');
        const events = eventsOf(sub.values).filter((e) => !probes.has(e.task.id));
        expect(sub.errors).toEqual([]);
        const ids = events.map((e) => e.task.id);
        expect(ids.at(-1)).toBe(sentinel);
        expect(new Set(ids.slice(0, -1))).toEqual(new Set(expected.keys()));
        expect(ids).toHaveLength(expected.size + 1);
        for (const [id, fields] of expected) {
          expect(events.find((e) => e.task.id === id)?.task).toMatchObject(fields);
        }
        expect(events.every((e) => FINAL_STATUSES.includes(e.task.status))).toBe(true);
        expect(events.every((e) => e.replayed === false)).toBe(true);
        expectStrictlyIncreasing(events.map((e) => e.cursor));
      }

      // A later task of Bob's reaches his subscriber after anything of Alice's would have.
      const bobSentinel = await bob.start('echo', { value: 'bob' });
      await waitFor(
        () => other.values.some((v) => v.taskCompleted.task.id === bobSentinel),
        "bob's sentinel",
      );
      expect(
        eventsOf(other.values)
          .filter((e) => !probes.has(e.task.id))
          .map((e) => e.task.id),
      ).toEqual([bobSentinel]);
    });
  });
});

describe('taskCompleted with after', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it.each([1, 2, 3])(
    'replays the completions after the cursor, then continues live with no gap and no duplicate while tasks keep completing (round %i)',
    async (round) => {
      const user = await Actor.create(server, `seam-${round}`);
      const before: { id: string; cursor: string }[] = [];
      for (let i = 0; i < 8; i++) before.push(await user.runEcho(i));
      const middle = before[4];
      if (!middle) throw new Error('unreachable');
      const expectedReplay = before.slice(5).map((run) => run.id);

      // Subscribe and, in the same breath, start a burst; start a second burst once the first event is in.
      const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: middle.cursor });
      const firstBurst = Promise.all(Array.from({ length: 20 }, (_, i) => user.start('echo', { value: i })));
      await sub.until(1, 'the first replayed completion');
      const secondBurst = Promise.all(Array.from({ length: 10 }, (_, i) => user.start('echo', { value: i })));
      const burst = [...(await firstBurst), ...(await secondBurst)];
      const total = expectedReplay.length + burst.length;
      await sub.until(total, `${total} completions`);
      // Everything above has finished; a later task arrives after any duplicate would have.
      const sentinel = await user.start('echo', { value: 'sentinel' });
      await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === sentinel), 'the sentinel');

      const events = eventsOf(sub.values);
      expect(sub.errors).toEqual([]);
      const ids = events.map((e) => e.task.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toHaveLength(total + 1);
      // Exactly the user's completions after the cursor, as the tasks query knows them.
      const finished = await user.finalTaskIds();
      const afterCursor = finished.filter((id) => !before.slice(0, 5).some((run) => run.id === id));
      expect(new Set(ids)).toEqual(new Set(afterCursor));
      expect(new Set(ids)).toEqual(new Set([...expectedReplay, ...burst, sentinel]));
      // Replayed ones first, oldest first, then live ones; cursors strictly increasing past `after`.
      expect(ids.slice(0, expectedReplay.length)).toEqual(expectedReplay);
      const firstLive = events.findIndex((e) => !e.replayed);
      expect(firstLive).toBeGreaterThanOrEqual(expectedReplay.length);
      expect(events.slice(firstLive).every((e) => !e.replayed)).toBe(true);
      expectStrictlyIncreasing([middle.cursor, ...events.map((e) => e.cursor)]);
      expect(events.every((e) => e.task.status === 'SUCCEEDED')).toBe(true);
    },
  );

  describe('a subscription that races 20 back-to-back starts', () => {
    const COUNT = 20;

    /** A user with some history, or none (`fresh`): lastEventCursor is a cursor either way. */
    async function userWithHistory(name: string, { fresh = false } = {}) {
      const user = await Actor.create(server, name);
      if (!fresh) await user.runEcho('history');
      const after = await user.lastEventCursor();
      expect(after).not.toBeNull();
      return { user, after };
    }

    function expectExactlyOnce(events: readonly CompletedEvent[], started: readonly string[], after: string) {
      const ids = events.map((e) => e.task.id);
      expect(ids).toHaveLength(started.length);
      expect(new Set(ids)).toEqual(new Set(started));
      expect(events.every((e) => e.task.status === 'SUCCEEDED')).toBe(true);
      expectStrictlyIncreasing([after, ...events.map((e) => e.cursor)]);
    }

    it.each([
      { history: 'some history', name: 'race-graphql-ws', fresh: false },
      { history: 'no event yet', name: 'race-graphql-ws-fresh', fresh: true },
    ])(
      'delivers every completion exactly once to a graphql-ws client subscribed with lastEventCursor ($history)',
      async ({ name, fresh }) => {
        const { user, after } = await userWithHistory(name, { fresh });
        const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after });
        const started: string[] = [];
        for (let i = 0; i < COUNT; i++) started.push(await user.start('echo', { value: i }));
        await sub.until(COUNT);
        const sentinel = await user.start('echo', { value: 'sentinel' });
        await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === sentinel), 'the sentinel');
        expect(sub.errors).toEqual([]);
        expectExactlyOnce(eventsOf(sub.values), [...started, sentinel], after ?? '');
        expect(await user.lastEventCursor()).toBe(sub.values.at(-1)?.taskCompleted.cursor);
      },
    );

    it('delivers every completion exactly once over a raw graphql-transport-ws socket that starts the tasks on the same socket', async () => {
      const { user, after } = await userWithHistory('race-raw');
      const raw = await openRawSocket(server.wsUrl);
      await raw.init({ authorization: `Bearer ${user.token}` });
      raw.send({
        id: 'completions',
        type: 'subscribe',
        payload: { query: COMPLETED, variables: { userId: user.userId, after } },
      });
      for (let i = 0; i < COUNT; i++) {
        raw.send({
          id: `start-${i}`,
          type: 'subscribe',
          payload: { query: START, variables: { kind: 'echo', input: { value: i } } },
        });
      }
      const startedMessages = await waitFor(() => {
        const done = raw.messages.filter((m) => m['type'] === 'next' && String(m['id']).startsWith('start-'));
        return done.length >= COUNT && done;
      }, 'the startTask results');
      const started = startedMessages.map((m) => {
        const payload = m['payload'] as { data?: { startTask: { id: string } }; errors?: unknown };
        expect(payload.errors).toBeUndefined();
        return payload.data?.startTask.id ?? '';
      });
      const completions = () =>
        raw.messages
          .filter((m) => m['id'] === 'completions')
          .map((m) => {
            expect(m['type']).toBe('next');
            const payload = m['payload'] as { data: CompletedData; errors?: unknown };
            expect(payload.errors).toBeUndefined();
            return payload.data.taskCompleted;
          });
      await waitFor(() => completions().length >= COUNT, `${COUNT} completions`);
      const sentinel = await user.start('echo', { value: 'sentinel' });
      await waitFor(() => completions().some((e) => e.task.id === sentinel), 'the sentinel');
      expectExactlyOnce(completions(), [...started, sentinel], after ?? '');
      raw.send({ id: 'completions', type: 'complete' });
      raw.socket.close(1000);
      expect((await raw.closed).code).toBe(1000);
    });

    it('delivers every completion exactly once to an @urql/core client', async () => {
      const { user, after } = await userWithHistory('race-urql');
      const urql = createUrqlClient(server.url, user.token, user.ws());
      const events: CompletedEvent[] = [];
      const errors: unknown[] = [];
      const subscription = urql
        .subscription<CompletedData>(COMPLETED, { userId: user.userId, after })
        .subscribe((result) => {
          if (result.error) errors.push(result.error);
          if (result.data) events.push(result.data.taskCompleted);
        });
      const results = await Promise.all(
        Array.from({ length: COUNT }, (_, i) =>
          urql
            .mutation<{ startTask: { id: string } }>(START, { kind: 'echo', input: { value: i } })
            .toPromise(),
        ),
      );
      const started = results.map((result) => {
        expect(result.error).toBeUndefined();
        return result.data?.startTask.id ?? '';
      });
      await waitFor(() => events.length >= COUNT, `${COUNT} completions`);
      const sentinel = await user.start('echo', { value: 'sentinel' });
      await waitFor(() => events.some((e) => e.task.id === sentinel), 'the sentinel');
      subscription.unsubscribe();
      expect(errors).toEqual([]);
      expectExactlyOnce(events, [...started, sentinel], after ?? '');
    });
  });
});

// The gate wraps the embedded repository; Delivery above it is the same for every backend.
describe.skipIf(TEST_BACKEND === 'redis')('the seam between log and live bus, held open', () => {
  const hooks: ReadHooks = {};
  let server: TestServer;
  beforeAll(async () => {
    server = await startGatedServer(hooks);
  });
  afterAll(() => server.stop());

  /** A user with `count` finished echo tasks; the cursor after the `at`-th. */
  async function history(name: string, count: number, at: number) {
    const user = await Actor.create(server, name);
    const runs: { id: string; cursor: string }[] = [];
    for (let i = 0; i < count; i++) runs.push(await user.runEcho(i));
    const cursor = runs[at - 1]?.cursor;
    if (cursor === undefined) throw new Error('unreachable');
    return { user, cursor, later: runs.slice(at).map((run) => run.id) };
  }

  async function finishAll(user: Actor, count: number): Promise<string[]> {
    const ids = await Promise.all(Array.from({ length: count }, (_, i) => user.start('echo', { value: i })));
    await Promise.all(ids.map((id) => user.waitFinal(id)));
    return ids;
  }

  function expectSeam(
    events: readonly CompletedEvent[],
    replayed: readonly string[],
    live: readonly string[],
    after: string,
  ) {
    expect(events.map((e) => e.task.id)).toEqual([...replayed, ...live]);
    expect(events.map((e) => e.replayed)).toEqual([...replayed.map(() => true), ...live.map(() => false)]);
    expectStrictlyIncreasing([after, ...events.map((e) => e.cursor)]);
  }

  it('delivers completions that reach both the log and the listener before the replay reads the log once, as replayed', async () => {
    const { user, cursor, later } = await history('held-before-read', 6, 3);
    const held = gate(hooks, 'beforeReadEvents');
    const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: cursor });
    await held.entered;
    // Listening and buffering now; these finish before the log is read, so they are in both.
    const during = await finishAll(user, 10);
    held.open();
    await sub.until(later.length + during.length, 'the replay');
    const live = await finishAll(user, 5);
    const sentinel = await user.start('echo', { value: 'sentinel' });
    await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === sentinel), 'the sentinel');
    const events = eventsOf(sub.values);
    expect(sub.errors).toEqual([]);
    // The order inside one batch is the workers' order, i.e. the log's: compare as cursor-ordered lists.
    const replayedIds = events.filter((e) => e.replayed).map((e) => e.task.id);
    expect(replayedIds.slice(0, later.length)).toEqual(later);
    expect(new Set(replayedIds.slice(later.length))).toEqual(new Set(during));
    const liveIds = events.filter((e) => !e.replayed).map((e) => e.task.id);
    expect(new Set(liveIds.slice(0, -1))).toEqual(new Set(live));
    expectSeam(events, replayedIds, liveIds, cursor);
    expect(liveIds.at(-1)).toBe(sentinel);
  });

  it('delivers completions that happen after the replay read the log, live, without a gap', async () => {
    const { user, cursor, later } = await history('held-after-read', 6, 3);
    const held = gate(hooks, 'afterReadEvents');
    const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: cursor });
    await held.entered;
    // The log has been read; these only reach the buffered listener.
    const during = await finishAll(user, 10);
    held.open();
    await sub.until(later.length + during.length, 'replay and buffered completions');
    const sentinel = await user.start('echo', { value: 'sentinel' });
    await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === sentinel), 'the sentinel');
    const events = eventsOf(sub.values);
    expect(sub.errors).toEqual([]);
    const liveIds = events.filter((e) => !e.replayed).map((e) => e.task.id);
    expect(new Set(liveIds.slice(0, -1))).toEqual(new Set(during));
    expectSeam(events, later, liveIds, cursor);
    expect(liveIds.at(-1)).toBe(sentinel);
  });

  it('sends taskUpdated subscribers the latest state when the task changes before the listener is in place', async () => {
    const user = await Actor.create(server, 'held-snapshot');
    const service = await Actor.create(server, 'held-snapshot-service', { service: true });
    const id = await user.start('external', {});
    const held = gate(hooks, 'afterGet');
    const sub = collect<UpdatedData>(user.ws(), UPDATED, { id });
    await held.entered;
    // The first read saw QUEUED; the task finishes before the subscription listens.
    await service.gql('mutation($id: ID!) { completeTask(id: $id, result: 1) { id } }', { id });
    held.open();
    await ended(sub);
    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => v.taskUpdated.status)).toEqual(['SUCCEEDED']);
  });
});

describe('Viewer.lastEventCursor', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('is a start-of-log cursor for a user without events, then the cursor of their newest event', async () => {
    const user = await Actor.create(server, 'cursor-fresh');
    const service = await Actor.create(server, 'cursor-service', { service: true });
    const empty = await user.lastEventCursor();
    expect(empty).not.toBeNull();
    const replay = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: empty });

    const id = await user.start('external', {});
    const queued = await user.lastEventCursor();
    expect(queued).not.toBeNull();
    const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: queued });
    await service.gql('mutation($id: ID!) { completeTask(id: $id, result: 7) { id } }', { id });
    const [event] = eventsOf(await sub.until(1));
    expect(event?.task).toMatchObject({ id, status: 'SUCCEEDED', result: 7 });
    expect(compareCursors(queued ?? '', event?.cursor ?? '')).toBeLessThan(0);
    expect(await user.lastEventCursor()).toBe(event?.cursor);
    const [fromStart] = eventsOf(await replay.until(1));
    expect(fromStart).toMatchObject({ cursor: event?.cursor, task: { id } });
    expect(replay.errors).toEqual([]);
  });
});

/** A well-formed cursor newer than any this server issued: '999999999', or its `ms-seq` form. */
function futureCursor(runs: readonly { cursor: string }[]): string {
  return runs.some((run) => run.cursor.includes('-')) ? '9999999999999999-0' : '999999999';
}

describe('expired cursors (EVENT_RETENTION=5)', () => {
  let server: TestServer;
  let user: Actor;
  const runs: { id: string; cursor: string }[] = [];
  beforeAll(async () => {
    server = await startTestServer({ env: { EVENT_RETENTION: '5' } });
    user = await Actor.create(server, 'retention-user');
    // Three events per echo task (QUEUED, RUNNING, SUCCEEDED): six tasks leave only the last five events.
    for (let i = 0; i < 6; i++) runs.push(await user.runEcho(i));
  });
  afterAll(() => server.stop());

  it('ends a graphql-ws subscription with CURSOR_EXPIRED for a cursor older than the retained log', async () => {
    const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: runs[0]?.cursor });
    await ended(sub);
    expect(sub.values).toEqual([]);
    expect(codesOf(sub.errors)).toEqual(['CURSOR_EXPIRED']);
  });

  it('answers a raw socket with a result carrying CURSOR_EXPIRED, then completes the operation and keeps the connection', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${user.token}` });
    raw.send({
      id: 'old',
      type: 'subscribe',
      payload: { query: COMPLETED, variables: { userId: user.userId, after: runs[0]?.cursor } },
    });
    await raw.next(
      (m) => m['id'] === 'old' && (m['type'] === 'complete' || m['type'] === 'error'),
      'the end',
    );
    // graphql-ws reports an error creating the source stream as a `next` with `errors` plus `complete`.
    const own = raw.messages.filter((m) => m['id'] === 'old');
    expect(own.map((m) => m['type'])).toEqual(['next', 'complete']);
    const payload = own[0]?.['payload'] as { data?: unknown; errors?: GraphQLErrorShape[] };
    expect(payload.data ?? null).toBeNull();
    expect(codesOf(payload.errors ?? [])).toEqual(['CURSOR_EXPIRED']);
    raw.send({ id: 'q', type: 'subscribe', payload: { query: 'query { viewer { userId } }' } });
    await raw.next((m) => m['id'] === 'q' && m['type'] === 'complete', 'a query on the same connection');
    expect(raw.socket.readyState).toBe(raw.socket.OPEN);
  });

  it('treats a cursor beyond any issued one as expired', async () => {
    const sub = collect<CompletedData>(user.ws(), COMPLETED, {
      userId: user.userId,
      after: futureCursor(runs),
    });
    await ended(sub);
    expect(sub.values).toEqual([]);
    expect(codesOf(sub.errors)).toEqual(['CURSOR_EXPIRED']);
  });

  it('replays from a cursor inside the retained window, then continues live', async () => {
    const inside = runs[4];
    const last = runs[5];
    if (!inside || !last) throw new Error('unreachable');
    const sub = collect<CompletedData>(user.ws(), COMPLETED, { userId: user.userId, after: inside.cursor });
    const [replayed] = eventsOf(await sub.until(1));
    expect(replayed).toMatchObject({ cursor: last.cursor, replayed: true, task: { id: last.id } });
    const next = await user.start('echo', { value: 'next' });
    const events = eventsOf(await sub.until(2));
    expect(events[1]).toMatchObject({ replayed: false, task: { id: next, status: 'SUCCEEDED' } });
    expect(sub.errors).toEqual([]);
  });
});

describe('taskCompleted over SSE', () => {
  it('streams a completion as text/event-stream to a POST with a bearer token', async () => {
    const server = await startTestServer();
    const user = await Actor.create(server, 'sse-user');
    await user.runEcho('history');
    const after = await user.lastEventCursor();
    const controller = new AbortController();
    const response = await fetch(server.url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: `Bearer ${user.token}`,
      },
      body: JSON.stringify({ query: COMPLETED, variables: { userId: user.userId, after } }),
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const id = await user.start('echo', { value: 'over sse' });

    const reader = response.body?.pipeThrough(new TextDecoderStream()).getReader();
    if (!reader) throw new Error('no body');
    const payloads: { data?: CompletedData; errors?: unknown }[] = [];
    let text = '';
    while (!payloads.some((p) => p.data?.taskCompleted.task.id === id)) {
      const chunk = await reader.read();
      if (chunk.done) throw new Error(`stream ended before the completion: ${text}`);
      text += chunk.value;
      // Events are separated by a blank line; their `data:` lines hold the JSON.
      const blocks = text.split('\n\n');
      text = blocks.pop() ?? '';
      for (const block of blocks) {
        const data = block
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice('data:'.length).trimStart())
          .join('\n');
        if (data) payloads.push(JSON.parse(data) as { data?: CompletedData; errors?: unknown });
      }
    }
    controller.abort();
    await reader.cancel().catch(() => undefined);
    const events = payloads.flatMap((p) => (p.data ? [p.data.taskCompleted] : []));
    expect(payloads.every((p) => p.errors === undefined)).toBe(true);
    expect(events).toHaveLength(1);
    expect(events[0]?.task).toMatchObject({ id, status: 'SUCCEEDED', result: 'over sse' });
    await server.stop();
  });
});

describe('taskUpdated', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('sends the current state, then each change, and completes after the final one', async () => {
    const user = await Actor.create(server, 'updates-user');
    const service = await Actor.create(server, 'updates-service', { service: true });
    const id = await user.start('external', { job: 'x' });
    const sub = collect<UpdatedData>(user.ws(), UPDATED, { id });
    await sub.until(1, 'the snapshot');
    const progress = (p: number) =>
      service.gql('mutation($id: ID!, $p: Float!) { reportTaskProgress(id: $id, progress: $p) { id } }', {
        id,
        p,
      });
    await progress(0.25);
    await sub.until(2);
    await progress(0.5);
    await sub.until(3);
    expect(sub.completed).toBe(false);
    await service.gql('mutation($id: ID!) { completeTask(id: $id, result: "done") { id } }', { id });
    await ended(sub);
    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => [v.taskUpdated.status, v.taskUpdated.progress])).toEqual([
      ['QUEUED', 0],
      ['RUNNING', 0.25],
      ['RUNNING', 0.5],
      ['SUCCEEDED', 1],
    ]);
    expect(sub.values.every((v) => v.taskUpdated.id === id)).toBe(true);
    expect(sub.values.at(-1)?.taskUpdated.result).toBe('done');
  });

  it('sends the final state of an already finished task and completes at once', async () => {
    const user = await Actor.create(server, 'updates-finished');
    const { id } = await user.runEcho({ answer: 42 });
    const sub = collect<UpdatedData>(user.ws(), UPDATED, { id });
    await ended(sub);
    expect(sub.errors).toEqual([]);
    expect(sub.values.map((v) => v.taskUpdated)).toEqual([
      expect.objectContaining({ id, status: 'SUCCEEDED', result: { answer: 42 } }),
    ]);
  });
});
