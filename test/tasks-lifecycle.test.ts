import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind, TaskFailure } from '../src/tasks/kinds/kind.js';
import { waitFor } from './utils/deferred.js';
import { type GraphQLResponse, startTaskWith, startTestServer, type TestServer } from './utils/tserver.js';
import { createUrqlClient } from './utils/urql.js';
import { collect, createWsClient } from './utils/ws-clients.js';

type Status = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

interface TaskView {
  id: string;
  userId: string;
  kind: string;
  status: Status;
  input: unknown;
  result: unknown;
  error: { code: string; message: string } | null;
  progress: number;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

interface CompletedEvent {
  taskCompleted: { cursor: string; replayed: boolean; task: TaskView };
}

interface TaskPageView {
  edges: { cursor: string; node: TaskView }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

const TASK_FIELDS =
  'id userId kind status input result error { code message } progress attempts createdAt startedAt finishedAt';
const START_TASK = `mutation Start($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query Get($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const CANCEL_TASK = `mutation Cancel($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const TASK_UPDATED = `subscription Updated($id: ID!) { taskUpdated(id: $id) { ${TASK_FIELDS} } }`;
const TASK_COMPLETED = `subscription Completed($userId: ID!, $after: String) {
  taskCompleted(userId: $userId, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;
const LIST_TASKS = `query List($userId: ID, $status: [TaskStatus!], $first: Int, $after: String) {
  tasks(userId: $userId, status: $status, first: $first, after: $after) {
    edges { cursor node { ${TASK_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const REPORT_PROGRESS = `mutation Report($id: ID!, $progress: Float!) {
  reportTaskProgress(id: $id, progress: $progress) { ${TASK_FIELDS} }
}`;
const COMPLETE_TASK = `mutation Complete($id: ID!, $result: JSON) { completeTask(id: $id, result: $result) { ${TASK_FIELDS} } }`;
const FAIL_TASK = `mutation Fail($id: ID!, $message: String!, $code: String) {
  failTask(id: $id, message: $message, code: $code) { ${TASK_FIELDS} }
}`;

const FINAL: readonly Status[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** Runs of `test.blocker` whose signal was aborted, by task id, with the abort reason. */
const abortedRuns = new Map<string, unknown>();

const TEST_KINDS = [
  defineKind({
    name: 'test.flaky',
    description: 'Fails its first two attempts, then succeeds.',
    input: z.strictObject({}),
    attempts: 3,
    backoff: { type: 'fixed', delayMs: 10 },
    async handler(_input, { attempt }) {
      if (attempt < 3) throw new TaskFailure('FLAKY', `attempt ${attempt} failed`);
      return { succeededOnAttempt: attempt };
    },
  }),
  defineKind({
    name: 'test.broken',
    description: 'Fails every attempt.',
    input: z.strictObject({}),
    attempts: 2,
    backoff: { type: 'fixed', delayMs: 10 },
    async handler(_input, { attempt }) {
      throw new TaskFailure('ALWAYS_BROKEN', `attempt ${attempt} failed`);
    },
  }),
  defineKind({
    name: 'test.fatal',
    description: 'Fails with a non-retryable failure.',
    input: z.strictObject({}),
    attempts: 3,
    backoff: { type: 'fixed', delayMs: 10 },
    async handler() {
      throw new TaskFailure('FATAL_INPUT', 'retrying cannot help', false);
    },
  }),
  defineKind({
    name: 'test.slow',
    description: 'Waits far longer than its timeout, honouring its signal.',
    input: z.strictObject({}),
    timeoutMs: 50,
    async handler(_input, { signal }) {
      await new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      return null;
    },
  }),
  defineKind({
    name: 'test.hung',
    description: 'Never settles and ignores its signal.',
    input: z.strictObject({}),
    timeoutMs: 50,
    handler: () => new Promise(() => {}),
  }),
  defineKind({
    name: 'test.blocker',
    description: 'Runs until its signal is aborted and records that it was.',
    input: z.strictObject({}),
    async handler(_input, { signal, taskId }) {
      await new Promise((_resolve, reject) => {
        signal.addEventListener(
          'abort',
          () => {
            abortedRuns.set(taskId, signal.reason);
            reject(signal.reason);
          },
          { once: true },
        );
      });
      return null;
    },
  }),
];

function must<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`expected ${what}`);
  return value;
}

function errorCode(response: GraphQLResponse<unknown>): unknown {
  return response.errors?.[0]?.extensions?.['code'];
}

const startTask = (server: TestServer, token: string, input: Record<string, unknown>) =>
  startTaskWith<TaskView>(server, token, START_TASK, input);

async function getTask(server: TestServer, token: string, id: string): Promise<TaskView> {
  const response = await server.gql<{ task: TaskView | null }>(GET_TASK, { id }, token);
  expect(response.errors).toBeUndefined();
  return must(response.data?.task, `task ${id}`);
}

async function waitForStatus(
  server: TestServer,
  token: string,
  id: string,
  statuses: readonly Status[],
): Promise<TaskView> {
  return waitFor(
    async () => {
      const task = await getTask(server, token, id);
      return statuses.includes(task.status) && task;
    },
    `task ${id} to be ${statuses.join(' or ')}`,
  );
}

const waitForFinal = (server: TestServer, token: string, id: string) =>
  waitForStatus(server, token, id, FINAL);

async function listTasks(
  server: TestServer,
  token: string,
  variables: Record<string, unknown> = {},
): Promise<GraphQLResponse<{ tasks: TaskPageView }>> {
  return server.gql<{ tasks: TaskPageView }>(LIST_TASKS, variables, token);
}

async function listedIds(server: TestServer, token: string, variables: Record<string, unknown> = {}) {
  const response = await listTasks(server, token, variables);
  expect(response.errors).toBeUndefined();
  return must(response.data, 'a task page').tasks.edges.map((edge) => edge.node.id);
}

/**
 * Subscribes to `userId`'s completions with no race against what follows: the user gets an event
 * in their log (an external task that nobody runs), and the subscription resumes after its cursor.
 */
async function subscribeCompletions(server: TestServer, userId: string) {
  const token = await server.token(userId);
  await startTask(server, token, { kind: 'external', input: { purpose: 'cursor anchor' } });
  const viewer = await server.gql<{ viewer: { lastEventCursor: string | null } }>(
    '{ viewer { lastEventCursor } }',
    {},
    token,
  );
  const after = must(viewer.data?.viewer.lastEventCursor, 'a cursor in the log');
  const ws = createWsClient(server.wsUrl, token);
  const sub = collect<CompletedEvent>(ws, TASK_COMPLETED, { userId, after });
  return {
    sub,
    /** Waits for the completion of task `id` and returns it. */
    completionOf: (id: string) =>
      waitFor(() => {
        if (sub.errors.length > 0) throw new Error(`taskCompleted failed: ${JSON.stringify(sub.errors)}`);
        return sub.values.find((value) => value.taskCompleted.task.id === id)?.taskCompleted;
      }, `the completion of task ${id}`),
  };
}

function isIsoInstant(value: string | null): boolean {
  return value !== null && new Date(value).toISOString() === value;
}

describe('tasks lifecycle', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ kinds: TEST_KINDS });
  });
  afterAll(() => server.stop());

  describe('a task run by the service', () => {
    it('should take a task from QUEUED through RUNNING to SUCCEEDED and stream every change to urql until it ends', async () => {
      const token = await server.token('lifecycle-urql');
      const urql = createUrqlClient(server.url, token, createWsClient(server.wsUrl, token));

      const started = await urql
        .mutation<{ startTask: TaskView }>(START_TASK, { input: { kind: 'sleep', input: { ms: 800 } } })
        .toPromise();
      expect(started.error).toBeUndefined();
      const queued = must(started.data, 'startTask data').startTask;
      expect(queued).toMatchObject({
        userId: 'lifecycle-urql',
        kind: 'sleep',
        status: 'QUEUED',
        input: { ms: 800 },
        result: null,
        error: null,
        progress: 0,
        attempts: 0,
        startedAt: null,
        finishedAt: null,
      });
      expect(isIsoInstant(queued.createdAt)).toBe(true);

      const updates: TaskView[] = [];
      const errors: unknown[] = [];
      let ended = false;
      const subscription = urql
        .subscription<{ taskUpdated: TaskView }>(TASK_UPDATED, { id: queued.id })
        .subscribe((result) => {
          if (result.error) errors.push(result.error);
          // urql repeats the last result with hasNext: false when the server completes the stream.
          if (!result.hasNext) ended = true;
          else if (result.data) updates.push(result.data.taskUpdated);
        });
      await waitFor(() => ended, 'the server to complete taskUpdated');
      subscription.unsubscribe();

      expect(errors).toEqual([]);
      const statuses = updates.map((update) => update.status);
      // The current state comes first, then changes in order; the last one is the final state.
      expect(['QUEUED', 'RUNNING']).toContain(statuses[0]);
      expect(statuses.at(-1)).toBe('SUCCEEDED');
      expect(statuses.filter((status) => status === 'SUCCEEDED')).toHaveLength(1);
      const order: Status[] = ['QUEUED', 'RUNNING', 'SUCCEEDED'];
      const ranks = statuses.map((status) => order.indexOf(status));
      expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
      const running = updates.filter((update) => update.status === 'RUNNING');
      expect(running.some((update) => update.progress > 0 && update.progress < 1)).toBe(true);
      const progress = updates.map((update) => update.progress);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));

      const final = must(updates.at(-1), 'the final update');
      expect(final).toMatchObject({
        id: queued.id,
        status: 'SUCCEEDED',
        progress: 1,
        attempts: 1,
        error: null,
      });
      expect(final.result).toEqual({ sleptMs: expect.any(Number) });
      expect(isIsoInstant(final.createdAt)).toBe(true);
      expect(isIsoInstant(final.startedAt)).toBe(true);
      expect(isIsoInstant(final.finishedAt)).toBe(true);
      const createdAt = Date.parse(final.createdAt);
      const startedAt = Date.parse(must(final.startedAt, 'startedAt'));
      const finishedAt = Date.parse(must(final.finishedAt, 'finishedAt'));
      expect(createdAt).toBeLessThanOrEqual(startedAt);
      expect(startedAt).toBeLessThanOrEqual(finishedAt);

      const stored = await urql.query<{ task: TaskView }>(GET_TASK, { id: queued.id }).toPromise();
      expect(stored.data?.task).toMatchObject({ status: 'SUCCEEDED', progress: 1, attempts: 1 });
      expect(stored.data?.task.result).toEqual(final.result);
    });

    it('should send the current state of a finished task to a late taskUpdated subscriber and then complete', async () => {
      const token = await server.token('lifecycle-late');
      const task = await startTask(server, token, { kind: 'echo', input: { value: 'done' } });
      await waitForFinal(server, token, task.id);

      const sub = collect<{ taskUpdated: TaskView }>(createWsClient(server.wsUrl, token), TASK_UPDATED, {
        id: task.id,
      });
      await sub.done;
      expect(sub.errors).toEqual([]);
      expect(sub.values.map((value) => value.taskUpdated)).toEqual([
        expect.objectContaining({ id: task.id, status: 'SUCCEEDED', result: 'done' }),
      ]);
    });
  });

  describe('retries', () => {
    it('should retry with backoff until the attempt succeeds', async () => {
      const token = await server.token('retry-flaky');
      const task = await startTask(server, token, { kind: 'test.flaky' });
      const final = await waitForFinal(server, token, task.id);
      expect(final).toMatchObject({
        status: 'SUCCEEDED',
        attempts: 3,
        result: { succeededOnAttempt: 3 },
        error: null,
        progress: 1,
      });
    });

    it('should fail with the handler failure code once every attempt of the kind is spent', async () => {
      const token = await server.token('retry-broken');
      const task = await startTask(server, token, { kind: 'test.broken' });
      const final = await waitForFinal(server, token, task.id);
      expect(final).toMatchObject({
        status: 'FAILED',
        attempts: 2,
        result: null,
        error: { code: 'ALWAYS_BROKEN', message: 'attempt 2 failed' },
      });
      expect(isIsoInstant(final.finishedAt)).toBe(true);
    });

    it('should fail after one attempt when the failure is not retryable', async () => {
      const token = await server.token('retry-fatal');
      const task = await startTask(server, token, { kind: 'test.fatal' });
      const final = await waitForFinal(server, token, task.id);
      expect(final).toMatchObject({
        status: 'FAILED',
        attempts: 1,
        error: { code: 'FATAL_INPUT', message: 'retrying cannot help' },
      });
    });

    it('should fail with TIMEOUT when an attempt outlives the timeout of its kind', async () => {
      const token = await server.token('retry-timeout');
      const task = await startTask(server, token, { kind: 'test.slow' });
      const final = await waitForFinal(server, token, task.id);
      expect(final).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'TIMEOUT' } });
    });

    it('should fail with TIMEOUT even when the handler ignores its signal and never settles', async () => {
      const token = await server.token('retry-hung');
      const task = await startTask(server, token, { kind: 'test.hung' });
      const final = await waitForFinal(server, token, task.id);
      expect(final).toMatchObject({ status: 'FAILED', attempts: 1, error: { code: 'TIMEOUT' } });
    });
  });

  describe('idempotency keys', () => {
    it('should return the same task for the same user, key and input instead of starting a second one', async () => {
      const token = await server.token('idem-alice');
      const input = { kind: 'echo', input: { value: { order: 17 } }, idempotencyKey: 'order-17' };
      const first = await startTask(server, token, input);
      const second = await startTask(server, token, input);
      expect(second.id).toBe(first.id);
      expect(await listedIds(server, token)).toEqual([first.id]);

      const service = await server.token('idem-service', { service: true });
      const onBehalf = await startTask(server, service, { ...input, userId: 'idem-alice' });
      expect(onBehalf.id).toBe(first.id);
      expect(await listedIds(server, token)).toEqual([first.id]);
    });

    it('should keep idempotency keys apart per user', async () => {
      const alice = await server.token('idem-a');
      const bob = await server.token('idem-b');
      const input = { kind: 'echo', input: { value: 1 }, idempotencyKey: 'shared-key' };
      const ofAlice = await startTask(server, alice, input);
      const ofBob = await startTask(server, bob, input);
      expect(ofBob.id).not.toBe(ofAlice.id);
      expect(ofAlice.userId).toBe('idem-a');
      expect(ofBob.userId).toBe('idem-b');
      expect(await listedIds(server, alice)).toEqual([ofAlice.id]);
      expect(await listedIds(server, bob)).toEqual([ofBob.id]);
    });

    it('should refuse to reuse a key for another input with CONFLICT', async () => {
      const token = await server.token('idem-conflict');
      const first = await startTask(server, token, {
        kind: 'echo',
        input: { value: 'a' },
        idempotencyKey: 'k',
      });
      const response = await server.gql(
        START_TASK,
        { input: { kind: 'echo', input: { value: 'b' }, idempotencyKey: 'k' } },
        token,
      );
      expect(errorCode(response)).toBe('CONFLICT');
      expect(await listedIds(server, token)).toEqual([first.id]);
    });
  });

  describe('external kinds', () => {
    it('should leave an external task QUEUED for the runner while it runs other tasks', async () => {
      const token = await server.token('ext-idle');
      const external = await startTask(server, token, { kind: 'external', input: { job: 'render' } });
      const echo = await startTask(server, token, { kind: 'echo', input: { value: 'after' } });
      expect(await waitForFinal(server, token, echo.id)).toMatchObject({ status: 'SUCCEEDED' });
      expect(await getTask(server, token, external.id)).toMatchObject({
        status: 'QUEUED',
        attempts: 0,
        progress: 0,
        startedAt: null,
      });
    });

    it('should run an external task through service reports and deliver its completion to the owner', async () => {
      const { completionOf } = await subscribeCompletions(server, 'ext-owner');
      const owner = await server.token('ext-owner');
      const service = await server.token('ext-system', { service: true });
      const task = await startTask(server, owner, { kind: 'external', input: { job: 'transcode' } });

      const progressed = await server.gql<{ reportTaskProgress: TaskView }>(
        REPORT_PROGRESS,
        { id: task.id, progress: 0.4 },
        service,
      );
      expect(progressed.errors).toBeUndefined();
      expect(progressed.data?.reportTaskProgress).toMatchObject({
        status: 'RUNNING',
        progress: 0.4,
        attempts: 1,
      });
      expect(isIsoInstant(progressed.data?.reportTaskProgress.startedAt ?? null)).toBe(true);

      const completed = await server.gql<{ completeTask: TaskView }>(
        COMPLETE_TASK,
        { id: task.id, result: { url: 'https://example.test/out.mp4' } },
        service,
      );
      expect(completed.errors).toBeUndefined();
      expect(completed.data?.completeTask).toMatchObject({
        status: 'SUCCEEDED',
        progress: 1,
        attempts: 1,
        result: { url: 'https://example.test/out.mp4' },
      });

      const event = await completionOf(task.id);
      expect(event.task).toMatchObject({
        id: task.id,
        userId: 'ext-owner',
        status: 'SUCCEEDED',
        result: { url: 'https://example.test/out.mp4' },
      });

      const again = await server.gql(COMPLETE_TASK, { id: task.id, result: 'twice' }, service);
      expect(errorCode(again)).toBe('CONFLICT');
      expect(await getTask(server, owner, task.id)).toMatchObject({
        result: { url: 'https://example.test/out.mp4' },
      });
    });

    it('should fail an external task with the code the service gives', async () => {
      const owner = await server.token('ext-fail');
      const service = await server.token('ext-system', { service: true });
      const task = await startTask(server, owner, { kind: 'external' });
      const failed = await server.gql<{ failTask: TaskView }>(
        FAIL_TASK,
        { id: task.id, message: 'upstream is down', code: 'UPSTREAM_DOWN' },
        service,
      );
      expect(failed.errors).toBeUndefined();
      expect(failed.data?.failTask).toMatchObject({
        status: 'FAILED',
        error: { code: 'UPSTREAM_DOWN', message: 'upstream is down' },
      });

      const other = await startTask(server, owner, { kind: 'external' });
      const defaulted = await server.gql<{ failTask: TaskView }>(
        FAIL_TASK,
        { id: other.id, message: 'gave up' },
        service,
      );
      expect(defaulted.data?.failTask.error).toEqual({ code: 'FAILED', message: 'gave up' });
    });

    it('should refuse service reports on a task the service runs itself with BAD_USER_INPUT', async () => {
      const owner = await server.token('ext-wrong-kind');
      const service = await server.token('ext-system', { service: true });
      const echo = await startTask(server, owner, { kind: 'echo', input: { value: 1 } });
      const reported = await server.gql(REPORT_PROGRESS, { id: echo.id, progress: 0.5 }, service);
      expect(errorCode(reported)).toBe('BAD_USER_INPUT');
      const completed = await server.gql(COMPLETE_TASK, { id: echo.id, result: 2 }, service);
      expect(errorCode(completed)).toBe('BAD_USER_INPUT');
    });

    it('should refuse progress outside 0..1 with BAD_USER_INPUT and leave the task as it was', async () => {
      const owner = await server.token('ext-range');
      const service = await server.token('ext-system', { service: true });
      const task = await startTask(server, owner, { kind: 'external' });
      for (const progress of [1.5, -0.1]) {
        const response = await server.gql(REPORT_PROGRESS, { id: task.id, progress }, service);
        expect(errorCode(response)).toBe('BAD_USER_INPUT');
        expect(response.errors?.[0]?.extensions?.['field']).toBe('progress');
      }
      expect(await getTask(server, owner, task.id)).toMatchObject({ status: 'QUEUED', progress: 0 });
    });

    it('should refuse the service-role mutations to a user with FORBIDDEN', async () => {
      const owner = await server.token('ext-not-service');
      const task = await startTask(server, owner, { kind: 'external' });
      const response = await server.gql(COMPLETE_TASK, { id: task.id, result: 'mine' }, owner);
      expect(errorCode(response)).toBe('FORBIDDEN');
      expect(await getTask(server, owner, task.id)).toMatchObject({ status: 'QUEUED' });
    });
  });

  describe('tasks started by a service', () => {
    it("should start a task on behalf of a user and deliver its completion to that user's subscriber", async () => {
      const { completionOf } = await subscribeCompletions(server, 'on-behalf-x');
      const service = await server.token('billing-system', { service: true });
      const task = await startTask(server, service, {
        kind: 'echo',
        input: { value: { invoice: 42 } },
        userId: 'on-behalf-x',
      });
      expect(task.userId).toBe('on-behalf-x');

      const event = await completionOf(task.id);
      expect(event.task).toMatchObject({
        userId: 'on-behalf-x',
        status: 'SUCCEEDED',
        result: { invoice: 42 },
      });
      const x = await server.token('on-behalf-x');
      expect(await getTask(server, x, task.id)).toMatchObject({ userId: 'on-behalf-x', status: 'SUCCEEDED' });
    });
  });
});

describe('cancellation and worker concurrency', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ kinds: TEST_KINDS, env: { WORKER_CONCURRENCY: '1' } });
  });
  afterAll(() => server.stop());

  it('should cancel a running sleep, end its taskUpdated stream and free its worker for the next task', async () => {
    const token = await server.token('cancel-sleep');
    const sleep = await startTask(server, token, { kind: 'sleep', input: { ms: 60_000 } });
    await waitForStatus(server, token, sleep.id, ['RUNNING']);
    const updates = collect<{ taskUpdated: TaskView }>(createWsClient(server.wsUrl, token), TASK_UPDATED, {
      id: sleep.id,
    });
    await updates.until(1, 'the current state');

    const cancelled = await server.gql<{ cancelTask: TaskView }>(CANCEL_TASK, { id: sleep.id }, token);
    expect(cancelled.errors).toBeUndefined();
    expect(cancelled.data?.cancelTask).toMatchObject({
      status: 'CANCELLED',
      error: { code: 'CANCELLED' },
      result: null,
    });
    expect(isIsoInstant(cancelled.data?.cancelTask.finishedAt ?? null)).toBe(true);
    await updates.done;
    expect(updates.errors).toEqual([]);
    expect(updates.values.at(-1)?.taskUpdated.status).toBe('CANCELLED');

    // One worker: the next task can only run once the cancelled run has given its slot back.
    const next = await startTask(server, token, { kind: 'echo', input: { value: 'next' } });
    expect(await waitForFinal(server, token, next.id)).toMatchObject({ status: 'SUCCEEDED', result: 'next' });
    expect(await getTask(server, token, sleep.id)).toMatchObject({
      status: 'CANCELLED',
      error: { code: 'CANCELLED' },
      attempts: 1,
    });
  });

  it('should abort the signal of the handler when its task is cancelled', async () => {
    const token = await server.token('cancel-blocker');
    const task = await startTask(server, token, { kind: 'test.blocker' });
    await waitForStatus(server, token, task.id, ['RUNNING']);
    const cancelled = await server.gql<{ cancelTask: TaskView }>(CANCEL_TASK, { id: task.id }, token);
    expect(cancelled.data?.cancelTask.status).toBe('CANCELLED');
    const reason = await waitFor(() => abortedRuns.get(task.id), 'the handler to see the abort');
    expect(reason).toBe('cancelled');
    expect(await getTask(server, token, task.id)).toMatchObject({ status: 'CANCELLED', attempts: 1 });
  });

  it('should refuse to cancel a finished task with CONFLICT', async () => {
    const token = await server.token('cancel-finished');
    const task = await startTask(server, token, { kind: 'echo', input: { value: 1 } });
    await waitForFinal(server, token, task.id);
    const response = await server.gql(CANCEL_TASK, { id: task.id }, token);
    expect(errorCode(response)).toBe('CONFLICT');
    expect(await getTask(server, token, task.id)).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('should keep a second task QUEUED while the only worker runs the first', async () => {
    const token = await server.token('concurrency-one');
    const first = await startTask(server, token, { kind: 'sleep', input: { ms: 60_000 } });
    await waitForStatus(server, token, first.id, ['RUNNING']);
    const second = await startTask(server, token, { kind: 'sleep', input: { ms: 60_000 } });

    expect(await getTask(server, token, first.id)).toMatchObject({ status: 'RUNNING' });
    expect(await getTask(server, token, second.id)).toMatchObject({ status: 'QUEUED', attempts: 0 });

    await server.gql(CANCEL_TASK, { id: first.id }, token);
    await waitForStatus(server, token, second.id, ['RUNNING']);
    await server.gql(CANCEL_TASK, { id: second.id }, token);
    expect(await getTask(server, token, second.id)).toMatchObject({ status: 'CANCELLED' });
  });

  it('should cancel a task that is still QUEUED so that it never runs', async () => {
    const token = await server.token('cancel-queued');
    const running = await startTask(server, token, { kind: 'sleep', input: { ms: 60_000 } });
    await waitForStatus(server, token, running.id, ['RUNNING']);
    const queued = await startTask(server, token, { kind: 'echo', input: { value: 'never' } });
    const cancelled = await server.gql<{ cancelTask: TaskView }>(CANCEL_TASK, { id: queued.id }, token);
    expect(cancelled.data?.cancelTask).toMatchObject({ status: 'CANCELLED', attempts: 0 });

    await server.gql(CANCEL_TASK, { id: running.id }, token);
    const later = await startTask(server, token, { kind: 'echo', input: { value: 'later' } });
    await waitForFinal(server, token, later.id);
    expect(await getTask(server, token, queued.id)).toMatchObject({
      status: 'CANCELLED',
      attempts: 0,
      result: null,
      startedAt: null,
    });
  });
});

describe('with WORKER_CONCURRENCY=0', () => {
  it('should keep tasks QUEUED because this process runs none', async () => {
    const server = await startTestServer({ env: { WORKER_CONCURRENCY: '0' } });
    const token = await server.token('no-workers');
    const task = await startTask(server, token, { kind: 'echo', input: { value: 1 } });
    const updates = collect<{ taskUpdated: TaskView }>(createWsClient(server.wsUrl, token), TASK_UPDATED, {
      id: task.id,
    });
    await updates.until(1, 'the current state');
    // Give a runner every chance to pick the task up; nothing may change.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(updates.values.map((value) => value.taskUpdated.status)).toEqual(['QUEUED']);
    expect(await getTask(server, token, task.id)).toMatchObject({
      status: 'QUEUED',
      attempts: 0,
      startedAt: null,
    });
    updates.unsubscribe();
    await server.stop();
  });
});

describe('the tasks query', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('should page through tasks newest first with first/after and pageInfo', async () => {
    const token = await server.token('pager');
    const created: string[] = [];
    for (let n = 1; n <= 5; n++) {
      created.push((await startTask(server, token, { kind: 'external', input: { n } })).id);
    }
    const newestFirst = [...created].reverse();

    const seen: string[] = [];
    const pages: boolean[] = [];
    let after: string | null = null;
    for (;;) {
      const response = await listTasks(server, token, { first: 2, after });
      expect(response.errors).toBeUndefined();
      const page = must(response.data, 'a page').tasks;
      seen.push(...page.edges.map((edge) => edge.node.id));
      pages.push(page.pageInfo.hasNextPage);
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
    }
    expect(seen).toEqual(newestFirst);
    expect(pages).toEqual([true, true, false]);

    const all = await listTasks(server, token, { first: 5 });
    expect(all.data?.tasks.pageInfo.hasNextPage).toBe(false);
    expect(all.data?.tasks.edges.map((edge) => edge.node.id)).toEqual(newestFirst);
  });

  it('should filter tasks by status', async () => {
    const token = await server.token('filterer');
    const succeeded = await startTask(server, token, { kind: 'echo', input: { value: 'ok' } });
    await waitForFinal(server, token, succeeded.id);
    const queued = await startTask(server, token, { kind: 'external' });
    const cancelled = await startTask(server, token, { kind: 'external' });
    await server.gql(CANCEL_TASK, { id: cancelled.id }, token);

    expect(await listedIds(server, token, { status: ['QUEUED'] })).toEqual([queued.id]);
    expect(await listedIds(server, token, { status: ['SUCCEEDED', 'CANCELLED'] })).toEqual([
      cancelled.id,
      succeeded.id,
    ]);
    expect(await listedIds(server, token, { status: ['FAILED'] })).toEqual([]);
    expect(await listedIds(server, token)).toEqual([cancelled.id, queued.id, succeeded.id]);
  });

  it("should show a user only their own tasks and a service anyone's", async () => {
    const carol = await server.token('list-carol');
    const dave = await server.token('list-dave');
    const service = await server.token('list-service', { service: true });
    const ofCarol = await startTask(server, carol, { kind: 'external', input: { owner: 'carol' } });
    const ofDave = await startTask(server, dave, { kind: 'external', input: { owner: 'dave' } });

    expect(await listedIds(server, carol)).toEqual([ofCarol.id]);
    expect(await listedIds(server, carol, { userId: 'list-carol' })).toEqual([ofCarol.id]);
    const forbidden = await listTasks(server, carol, { userId: 'list-dave' });
    expect(errorCode(forbidden)).toBe('FORBIDDEN');

    expect(await listedIds(server, service, { userId: 'list-dave' })).toEqual([ofDave.id]);
    const everyone = await listTasks(server, service, { first: 100 });
    expect(everyone.errors).toBeUndefined();
    const nodes = must(everyone.data, 'a page').tasks.edges.map((edge) => edge.node);
    expect(nodes.map((node) => node.id)).toEqual(expect.arrayContaining([ofCarol.id, ofDave.id]));
    expect(nodes.map((node) => node.userId)).toEqual(expect.arrayContaining(['list-carol', 'list-dave']));
  });
});
