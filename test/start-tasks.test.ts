import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessApp, freshUser, type InProcessApp, onlyError } from './utils/in-process-app.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

interface TaskData {
  id: string;
  userId: string;
  kind: string;
  status: string;
  input: unknown;
}
interface ItemErrorData {
  code: string;
  message: string;
  field: string | null;
  taskId: string | null;
  retryAfter: number | null;
}
interface ResultData {
  task: TaskData | null;
  error: ItemErrorData | null;
}
interface CompletedData {
  taskCompleted: { cursor: string; replayed: boolean; task: { id: string; status: string; result: unknown } };
}

const TASK_FIELDS = 'id userId kind status input';
const START_TASKS = `mutation($inputs: [StartTaskInput!]!) {
  startTasks(inputs: $inputs) {
    task { ${TASK_FIELDS} }
    error { code message field taskId retryAfter }
  }
}`;
const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const TASK_IDS = `query($userId: ID) { tasks(userId: $userId, first: 100) { nodes { id } } }`;
const TASK_STATUS = `query($id: ID!) { task(id: $id) { status } }`;
const LAST_EVENT_CURSOR = '{ viewer { lastEventCursor } }';
const COMPLETED = `subscription($userId: ID!, $after: String) {
  taskCompleted(userId: $userId, after: $after) { cursor replayed task { id status result } }
}`;

type StartInput = Record<string, unknown>;

/** The task of each result, failing the test on an error. */
function tasksOf(results: readonly ResultData[]): TaskData[] {
  return results.map((result, index) => {
    expect(result.error, `result ${index}: ${JSON.stringify(result.error)}`).toBeNull();
    if (!result.task) throw new Error(`result ${index} has no task`);
    return result.task;
  });
}

/** The error of a result, failing the test when it holds a task. */
function errorOf(result: ResultData | undefined): ItemErrorData {
  expect(result?.task ?? null).toBeNull();
  if (!result?.error) throw new Error(`no error in ${JSON.stringify(result)}`);
  return result.error;
}

describe('startTasks', () => {
  let service: InProcessApp;
  let serviceToken: string;

  beforeAll(async () => {
    service = await createInProcessApp();
    serviceToken = await service.token(freshUser('system'), { service: true });
  });
  afterAll(async () => {
    await service?.stop();
  });

  /** Runs startTasks as `token` and returns its results; fails the test on a GraphQL error. */
  async function startTasks(token: string, inputs: readonly StartInput[]): Promise<ResultData[]> {
    const response = await service.gql<{ startTasks: ResultData[] }>(START_TASKS, { inputs }, token);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    expect(response.status).toBe(200);
    const results = response.data?.startTasks;
    if (!results) throw new Error('startTasks returned no results');
    expect(results).toHaveLength(inputs.length);
    return results;
  }

  async function taskIdsOf(userId: string): Promise<string[]> {
    const response = await service.gql<{ tasks: { nodes: { id: string }[] } }>(
      TASK_IDS,
      { userId },
      serviceToken,
    );
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    return (response.data?.tasks.nodes ?? []).map((node) => node.id);
  }

  describe('each input its task or its error', () => {
    it('should answer each invalid input with its own error, in order, and start the valid ones', async () => {
      const userId = freshUser('mixed');
      const victim = freshUser('victim');
      const token = await service.token(userId);
      const results = await startTasks(token, [
        { kind: 'echo', input: { value: 'first' } },
        { kind: 'no-such-kind', input: {} },
        { kind: 'sleep', input: { ms: 'soon' } },
        { kind: 'echo', input: { value: 'theirs' }, userId: victim },
        { kind: 'checksum', input: { text: 'last' } },
      ]);

      const [first, unknownKind, badInput, forbidden, last] = results;
      const started = tasksOf([first, last].filter((result) => result !== undefined));
      expect(started.map(({ kind, userId: owner, status }) => ({ kind, owner, status }))).toEqual([
        { kind: 'echo', owner: userId, status: 'QUEUED' },
        { kind: 'checksum', owner: userId, status: 'QUEUED' },
      ]);
      expect(errorOf(unknownKind)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'kind', taskId: null });
      expect(errorOf(badInput)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.ms' });
      expect(errorOf(forbidden)).toMatchObject({ code: 'FORBIDDEN', field: null, retryAfter: null });

      expect((await taskIdsOf(userId)).sort()).toEqual(started.map((task) => task.id).sort());
      expect(await taskIdsOf(victim)).toEqual([]);
    });

    it('should give each refused input the code and message startTask gives the same input', async () => {
      const token = await service.token(freshUser('same-rules'));
      const refused: StartInput[] = [
        { kind: 'no-such-kind' },
        { kind: 'sleep', input: { ms: -1 } },
        { kind: 'echo', input: { value: 1 }, idempotencyKey: '' },
        { kind: 'echo', input: { value: 1 }, userId: freshUser('someone-else') },
        { kind: 'echo', input: { value: 1 }, userId: '' },
      ];
      const results = await startTasks(token, refused);
      for (const [index, input] of refused.entries()) {
        const { message, extensions } = onlyError(await service.gql(START, { input }, token));
        expect(errorOf(results[index]), JSON.stringify(input)).toMatchObject({
          code: extensions['code'],
          message,
          field: extensions['field'] ?? null,
        });
      }
    });

    it('should let a service caller start for several users in one call, each owning their task', async () => {
      const [alice, bob] = [freshUser('alice'), freshUser('bob')];
      const results = await startTasks(serviceToken, [
        { kind: 'echo', input: { value: 'a' }, userId: alice },
        { kind: 'external', input: { job: 'b' }, userId: bob },
      ]);
      expect(tasksOf(results).map((task) => task.userId)).toEqual([alice, bob]);
      expect(await taskIdsOf(bob)).toEqual([results[1]?.task?.id]);
    });
  });

  describe('idempotency keys', () => {
    it('should give the same task twice for the same key twice in one call, and store one task', async () => {
      const userId = freshUser('same-key');
      const token = await service.token(userId);
      const keyed = { kind: 'echo', input: { value: 'once' }, idempotencyKey: 'order-1' };
      const [first, other, repeat] = tasksOf(
        await startTasks(token, [keyed, { kind: 'echo', input: { value: 'other' } }, keyed]),
      );
      expect(repeat?.id).toBe(first?.id);
      expect(other?.id).not.toBe(first?.id);
      expect((await taskIdsOf(userId)).sort()).toEqual([first?.id, other?.id].sort());
    });

    it('should answer the same key with another input in one call with CONFLICT naming the first task', async () => {
      const userId = freshUser('conflict');
      const token = await service.token(userId);
      const [first, second] = await startTasks(token, [
        { kind: 'echo', input: { value: 1 }, idempotencyKey: 'k' },
        { kind: 'echo', input: { value: 2 }, idempotencyKey: 'k' },
      ]);
      const [task] = tasksOf([first].filter((result) => result !== undefined));
      expect(errorOf(second)).toMatchObject({ code: 'CONFLICT', taskId: task?.id, field: null });
      expect(await taskIdsOf(userId)).toEqual([task?.id]);
    });

    it('should give the same tasks to a repeated call, and CONFLICT to a key reused with another input', async () => {
      const userId = freshUser('repeat');
      const token = await service.token(userId);
      const inputs = [1, 2, 3].map((value) => ({
        kind: 'echo',
        input: { value },
        idempotencyKey: `batch-7-${value}`,
      }));
      const first = tasksOf(await startTasks(token, inputs));
      const again = tasksOf(await startTasks(token, inputs));
      expect(again.map((task) => task.id)).toEqual(first.map((task) => task.id));

      const [changed] = await startTasks(token, [{ ...inputs[0], input: { value: 'changed' } }]);
      expect(errorOf(changed)).toMatchObject({ code: 'CONFLICT', taskId: first[0]?.id });
      expect(await taskIdsOf(userId)).toHaveLength(3);
    });
  });

  describe('the call as a whole', () => {
    it('should answer an empty list with an empty list', async () => {
      expect(await startTasks(await service.token(freshUser('empty')), [])).toEqual([]);
    });

    it('should start 1,000 inputs, the most one call takes, with one result each in order', async () => {
      const userId = freshUser('thousand');
      const inputs = Array.from({ length: 1_000 }, (_, index) => ({
        kind: 'echo',
        input: { value: index },
        userId,
      }));
      const tasks = tasksOf(await startTasks(serviceToken, inputs));
      expect(tasks.map((task) => task.input)).toEqual(inputs.map((input) => input.input));
      expect(new Set(tasks.map((task) => task.id)).size).toBe(1_000);
    });

    it('should refuse 1,001 inputs with BAD_USER_INPUT on field inputs, starting none', async () => {
      const userId = freshUser('too-many');
      const inputs = Array.from({ length: 1_001 }, (_, index) => ({ kind: 'echo', input: { value: index } }));
      const response = await service.gql(START_TASKS, { inputs }, await service.token(userId));
      const { extensions } = onlyError(response);
      expect(extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'inputs' });
      expect(response.data ?? null).toBeNull();
      expect(await taskIdsOf(userId)).toEqual([]);
    });

    it('should refuse a call without a token with UNAUTHENTICATED and HTTP 401', async () => {
      const response = await service.gql(
        START_TASKS,
        { inputs: [{ kind: 'echo', input: { value: 1 } }] },
        null,
      );
      expect(response.status).toBe(401);
      expect(onlyError(response).extensions['code']).toBe('UNAUTHENTICATED');
      expect(response.data ?? null).toBeNull();
    });
  });

  describe('rate limit', () => {
    let limited: InProcessApp;
    beforeAll(async () => {
      limited = await createInProcessApp({ env: { RATE_LIMIT_START_PER_MINUTE: '2' } });
    });
    afterAll(async () => {
      await limited?.stop();
    });

    it('should start the inputs within the rate and answer the ones beyond it with RATE_LIMITED and retryAfter', async () => {
      const token = await limited.token(freshUser('eager'));
      const keyed = { kind: 'echo', input: { value: 'keyed' }, idempotencyKey: 'k' };
      const inputs = [
        { kind: 'no-such-kind' },
        keyed,
        keyed,
        { kind: 'echo', input: { value: 'second' } },
        { kind: 'echo', input: { value: 'third' } },
        { kind: 'echo', input: { value: 'fourth' } },
      ];
      const response = await limited.gql<{ startTasks: ResultData[] }>(START_TASKS, { inputs }, token);
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      // Per-input refusals leave the call itself a success: no 429 for the whole response.
      expect(response.status).toBe(200);
      const [unknownKind, first, repeat, second, ...beyond] = response.data?.startTasks ?? [];

      // A refused input takes no token, and a repeated key within the call takes one for both.
      expect(errorOf(unknownKind).code).toBe('BAD_USER_INPUT');
      const [firstTask, repeatTask, secondTask] = tasksOf(
        [first, repeat, second].filter((result) => result !== undefined),
      );
      expect(repeatTask?.id).toBe(firstTask?.id);
      expect(secondTask?.input).toEqual({ value: 'second' });
      expect(beyond).toHaveLength(2);
      for (const result of beyond) {
        const error = errorOf(result);
        expect(error).toMatchObject({ code: 'RATE_LIMITED', field: null, taskId: null });
        expect(error.retryAfter).toBeGreaterThanOrEqual(1);
        expect(error.retryAfter).toBeLessThanOrEqual(60);
      }
    });
  });
});

describe('startTasks with workers and graphql-ws', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it("should run each started task to SUCCEEDED and push each completion on the user's taskCompleted", async () => {
    const userId = freshUser('bulk-live');
    const token = await server.token(userId);
    const cursor = await server.gql<{ viewer: { lastEventCursor: string | null } }>(
      LAST_EVENT_CURSOR,
      {},
      token,
    );
    const completions = collect<CompletedData>(createWsClient(server.wsUrl, token), COMPLETED, {
      userId,
      after: cursor.data?.viewer.lastEventCursor ?? null,
    });

    const inputs = [
      { kind: 'echo', input: { value: 'one' } },
      { kind: 'checksum', input: { text: 'two' } },
      { kind: 'sleep', input: { ms: 50 } },
    ];
    const response = await server.gql<{ startTasks: ResultData[] }>(START_TASKS, { inputs }, token);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    const tasks = tasksOf(response.data?.startTasks ?? []);
    expect(tasks.map((task) => task.kind)).toEqual(['echo', 'checksum', 'sleep']);

    await completions.until(3, 'three completions');
    const delivered = completions.values.map((value) => value.taskCompleted.task);
    expect(delivered.map((task) => task.id).sort()).toEqual(tasks.map((task) => task.id).sort());
    expect(delivered.map((task) => task.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(delivered.find((task) => task.id === tasks[0]?.id)?.result).toBe('one');
    expect(completions.errors).toEqual([]);
    for (const task of tasks) {
      const stored = await server.gql<{ task: { status: string } | null }>(
        TASK_STATUS,
        { id: task.id },
        token,
      );
      expect(stored.data?.task?.status).toBe('SUCCEEDED');
    }
  });
});
