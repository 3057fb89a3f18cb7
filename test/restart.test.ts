import { describe, expect, it } from 'vitest';
import { type ChildServer, spawnChild, startChildServer } from './utils/child-server.js';
import { waitFor } from './utils/deferred.js';
import { makeTempDir } from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

interface TaskView {
  id: string;
  kind: string;
  status: string;
  attempts: number;
  result: unknown;
  error: { code: string; message: string } | null;
}

interface CompletedEvent {
  taskCompleted: { cursor: string; replayed: boolean; task: TaskView };
}

const TASK_FIELDS = 'id kind status attempts result error { code message }';
const START = `mutation($kind: String!, $input: JSON) { startTask(input: { kind: $kind, input: $input }) { ${TASK_FIELDS} } }`;
const TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const TASKS = `query { tasks(first: 100) { nodes { ${TASK_FIELDS} } } }`;
const LAST_CURSOR = 'query { viewer { lastEventCursor } }';
const COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

async function startTask(
  server: ChildServer,
  token: string,
  kind: string,
  input: unknown,
): Promise<TaskView> {
  const response = await server.gql<{ startTask: TaskView }>(START, { kind, input }, token);
  expect(response.errors).toBeUndefined();
  const task = response.data?.startTask;
  if (!task) throw new Error('startTask returned no task');
  return task;
}

async function getTask(server: ChildServer, token: string, id: string): Promise<TaskView> {
  const response = await server.gql<{ task: TaskView | null }>(TASK, { id }, token);
  expect(response.errors).toBeUndefined();
  const task = response.data?.task;
  if (!task) throw new Error(`no task ${id}`);
  return task;
}

async function listTasks(server: ChildServer, token: string): Promise<TaskView[]> {
  const response = await server.gql<{ tasks: { nodes: TaskView[] } }>(TASKS, {}, token);
  expect(response.errors).toBeUndefined();
  return response.data?.tasks.nodes ?? [];
}

/** Polls the task until `check` holds for it. */
function waitForTask(
  server: ChildServer,
  token: string,
  id: string,
  check: (task: TaskView) => boolean,
  what: string,
): Promise<TaskView> {
  return waitFor(async () => {
    const task = await getTask(server, token, id);
    return check(task) && task;
  }, `task ${id} ${what}`);
}

/**
 * Runs an echo task to completion and returns the user's newest event cursor: a subscription with
 * it as `after` misses nothing that happens later, however late it reaches the server.
 */
async function primeCursor(server: ChildServer, token: string): Promise<string> {
  const warmup = await startTask(server, token, 'echo', { value: 'warm-up' });
  await waitForTask(server, token, warmup.id, (task) => task.status === 'SUCCEEDED', 'to succeed');
  const response = await server.gql<{ viewer: { lastEventCursor: string | null } }>(LAST_CURSOR, {}, token);
  const cursor = response.data?.viewer.lastEventCursor;
  if (!cursor) throw new Error('viewer.lastEventCursor is null after a completed task');
  return cursor;
}

async function killHard(server: ChildServer): Promise<void> {
  server.kill('SIGKILL');
  const status = await server.waitExit();
  expect(status.signal).toBe('SIGKILL');
}

async function stopGracefully(server: ChildServer): Promise<void> {
  server.kill('SIGTERM');
  const status = await server.waitExit();
  expect(status, server.stderr()).toEqual({ code: 0, signal: null });
}

describe('restart after kill -9', () => {
  it('retries the interrupted task, runs the queued ones, and a subscriber resuming from its last cursor gets each missed completion once', async () => {
    const dataDir = makeTempDir('tss-restart-');
    const first = await startChildServer({ dataDir, env: { WORKER_CONCURRENCY: '1' } });
    const token = await first.token('alice');
    const resumeFrom = await primeCursor(first, token);

    const before = collect<CompletedEvent>(
      createWsClient(first.wsUrl, token, { retryAttempts: 0 }),
      COMPLETED,
      {
        u: 'alice',
        after: resumeFrom,
      },
    );
    const quick = await startTask(first, token, 'echo', { value: 'before the crash' });
    const interrupted = await startTask(first, token, 'sleep', { ms: 3_000 });
    const queued = [
      await startTask(first, token, 'echo', { value: 'queued 1' }),
      await startTask(first, token, 'checksum', { text: 'queued 2' }),
      await startTask(first, token, 'echo', { value: 'queued 3' }),
    ];
    await before.until(1, 'the completion of the task that finished before the crash');
    await waitForTask(first, token, interrupted.id, (task) => task.status === 'RUNNING', 'to be RUNNING');
    for (const task of queued) expect((await getTask(first, token, task.id)).status).toBe('QUEUED');

    await killHard(first);
    await before.done;
    expect(before.values.map((event) => event.taskCompleted.task.id)).toEqual([quick.id]);
    const lastSeen = before.values.at(-1)?.taskCompleted.cursor;
    if (lastSeen === undefined) throw new Error('no cursor received before the crash');

    const second = await startChildServer({ dataDir, env: { WORKER_CONCURRENCY: '1' } });
    // The queued tasks were due first; the interrupted one is queued again behind them.
    await waitFor(async () => {
      const tasks = await listTasks(second, token);
      const byId = new Map(tasks.map((task) => [task.id, task]));
      return (
        queued.every((task) => byId.get(task.id)?.status === 'SUCCEEDED') &&
        ['RUNNING', 'SUCCEEDED'].includes(byId.get(interrupted.id)?.status ?? '')
      );
    }, 'the queued tasks to succeed and the interrupted one to run again');

    const after = collect<CompletedEvent>(
      createWsClient(second.wsUrl, token, { retryAttempts: 0 }),
      COMPLETED,
      {
        u: 'alice',
        after: lastSeen,
      },
    );
    await after.until(queued.length, 'the replay of the completions missed during the crash');
    const retriedStillRunning = (await getTask(second, token, interrupted.id)).status === 'RUNNING';
    await after.until(queued.length + 1, 'the completion of the retried task');
    // A later task's completion comes after anything still owed on this stream, duplicates included.
    const sentinel = await startTask(second, token, 'echo', { value: 'after the recovery' });
    await waitFor(
      () => after.values.some((event) => event.taskCompleted.task.id === sentinel.id),
      'the completion of a task started after the recovery',
    );

    const delivered = after.values.map((event) => event.taskCompleted);
    expect(delivered.at(-1)?.task.id).toBe(sentinel.id);
    const missed = delivered.slice(0, -1);
    expect(missed.map((event) => event.task.id).sort()).toEqual(
      [...queued.map((task) => task.id), interrupted.id].sort(),
    );
    expect(new Set(delivered.map((event) => event.cursor)).size).toBe(delivered.length);
    for (const event of missed.slice(0, queued.length)) expect(event.replayed).toBe(true);
    const retried = missed.find((event) => event.task.id === interrupted.id);
    expect(retried?.task).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    // Still running once the replay was delivered, its completion can only have come live.
    if (retriedStillRunning) expect(retried?.replayed).toBe(false);

    const final = await listTasks(second, token);
    expect(final.filter((task) => !FINAL.has(task.status))).toEqual([]);
    for (const event of missed) {
      expect(final.find((task) => task.id === event.task.id)).toMatchObject({
        status: event.task.status,
        attempts: event.task.attempts,
      });
    }
    expect(final.find((task) => task.id === interrupted.id)).toMatchObject({
      status: 'SUCCEEDED',
      attempts: 2,
      result: { sleptMs: expect.any(Number) },
    });
    for (const task of queued) {
      expect(final.find((t) => t.id === task.id)).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    }
    // Nothing after the last completion: the subscription is still open and quiet.
    expect(after.completed).toBe(false);
    expect(after.errors).toEqual([]);
    await stopGracefully(second);
  }, 45_000);

  it('fails a task interrupted on its last attempt with error code INTERRUPTED', async () => {
    const dataDir = makeTempDir('tss-restart-');
    let server = await startChildServer({ dataDir });
    const token = await server.token('bob');
    const resumeFrom = await primeCursor(server, token);
    const task = await startTask(server, token, 'sleep', { ms: 60_000 });
    const attempts = 3; // the sleep kind's

    for (let attempt = 1; attempt <= attempts; attempt++) {
      await waitForTask(
        server,
        token,
        task.id,
        (t) => t.status === 'RUNNING' && t.attempts === attempt,
        `to run attempt ${attempt}`,
      );
      await killHard(server);
      server = await startChildServer({ dataDir });
    }

    const failed = await waitForTask(server, token, task.id, (t) => FINAL.has(t.status), 'to be final');
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 3, error: { code: 'INTERRUPTED' } });
    expect(failed.error?.message).toContain('attempt 3 of 3');

    const sub = collect<CompletedEvent>(createWsClient(server.wsUrl, token), COMPLETED, {
      u: 'bob',
      after: resumeFrom,
    });
    const [event] = await sub.until(1, 'the replayed failure');
    expect(event?.taskCompleted).toMatchObject({
      replayed: true,
      task: { id: task.id, status: 'FAILED', error: { code: 'INTERRUPTED' } },
    });
    await stopGracefully(server);
  }, 45_000);
});

describe('graceful stop on SIGTERM', () => {
  it('exits 0, closes sockets as going away, and hands the running task back unspent to finish after the next start (DRAIN_GRACE_MS=0)', async () => {
    const dataDir = makeTempDir('tss-restart-');
    // No grace: the running task is handed back at once (with a grace it would finish first; see ops-drain).
    const first = await startChildServer({ dataDir, env: { DRAIN_GRACE_MS: '0' } });
    const token = await first.token('carol');
    const socket = await openRawSocket(first.wsUrl);
    await socket.init({ authorization: `Bearer ${token}` });
    const task = await startTask(first, token, 'sleep', { ms: 2_000 });
    await waitForTask(
      first,
      token,
      task.id,
      (t) => t.status === 'RUNNING' && t.attempts === 1,
      'to be RUNNING',
    );

    await stopGracefully(first);
    expect((await socket.closed).code).toBe(1001);

    // No workers: the stored state is exactly what the stopped process left.
    const idle = await startChildServer({ dataDir, env: { WORKER_CONCURRENCY: '0' } });
    expect(await getTask(idle, token, task.id)).toMatchObject({ status: 'QUEUED', attempts: 0, error: null });
    await stopGracefully(idle);

    const next = await startChildServer({ dataDir });
    const done = await waitForTask(next, token, task.id, (t) => FINAL.has(t.status), 'to be final');
    expect(done).toMatchObject({ status: 'SUCCEEDED', attempts: 1, result: { sleptMs: expect.any(Number) } });
    await stopGracefully(next);
  }, 45_000);
});

describe('start-up auth', () => {
  it('prints working dev tokens when no AUTH_* variable is set outside production', async () => {
    const server = await startChildServer({ auth: false });
    const lines = await waitFor(() => {
      const user = /^\s*user (\S+):\s+(\S+)\s*$/m.exec(server.stdout());
      const service = /^\s*service (\S+):\s+(\S+)\s*$/m.exec(server.stdout());
      return user && service ? { user, service } : undefined;
    }, 'the dev token lines on stdout');
    const [, userId, userToken] = lines.user;
    const [, serviceId, serviceToken] = lines.service;

    const asUser = await server.gql<{ viewer: { userId: string; roles: string[] } }>(
      'query { viewer { userId roles } }',
      {},
      userToken,
    );
    expect(asUser.errors).toBeUndefined();
    expect(asUser.data?.viewer).toEqual({ userId, roles: [] });
    const asService = await server.gql<{ viewer: { userId: string; roles: string[] } }>(
      'query { viewer { userId roles } }',
      {},
      serviceToken,
    );
    expect(asService.data?.viewer).toEqual({ userId: serviceId, roles: ['service'] });

    // The user token also works over graphql-ws: taskUpdated sends the current state first, then changes.
    if (userId === undefined || userToken === undefined) throw new Error('no user token');
    const started = await startTask(server, userToken, 'sleep', { ms: 200 });
    const updates = collect<{ taskUpdated: TaskView }>(
      createWsClient(server.wsUrl, userToken),
      `subscription($id: ID!) { taskUpdated(id: $id) { ${TASK_FIELDS} } }`,
      { id: started.id },
    );
    await updates.done;
    expect(updates.errors).toEqual([]);
    expect(updates.values.at(-1)?.taskUpdated).toMatchObject({ id: started.id, status: 'SUCCEEDED' });

    // The secret is ephemeral: a token signed with any other key is refused.
    const forged = await server.gql('query { viewer { userId } }', {}, await server.token(userId));
    expect(forged.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    await stopGracefully(server);
  });

  it('refuses to start in production without a token key, naming AUTH_JWT_SECRET', async () => {
    const child = await spawnChild({ auth: false, env: { NODE_ENV: 'production' } });
    const status = await child.waitExit();
    expect(status.signal).toBeNull();
    expect(status.code).not.toBe(0);
    expect(child.stderr()).toContain('AUTH_JWT_SECRET');
    expect(child.stdout()).not.toContain('Task status service on');
  });
});
