import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createInProcessApp, freshUser, type InProcessApp, onlyError } from './utils/in-process-app.js';

interface TaskData {
  id: string;
  userId: string;
  kind: string;
  status: string;
  progress: number;
  result: unknown;
  error: { code: string; message: string } | null;
  finishedAt: string | null;
}
interface PageData {
  tasks: {
    edges: { cursor: string; node: { id: string } }[];
    pageInfo: { hasNextPage: boolean; endCursor: string | null };
  };
}

const TASK_FIELDS = 'id userId kind status progress result error { code message } finishedAt';
const VIEWER = '{ viewer { userId roles lastEventCursor } }';
const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const PAGE = `query($userId: ID, $first: Int, $after: String) {
  tasks(userId: $userId, first: $first, after: $after) {
    edges { cursor node { id } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const SUCCEEDED_IDS = `query($userId: ID) { tasks(userId: $userId, status: [SUCCEEDED]) { nodes { id } } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const REPORT = `mutation($id: ID!, $progress: Float!) { reportTaskProgress(id: $id, progress: $progress) { ${TASK_FIELDS} } }`;
const COMPLETE = `mutation($id: ID!, $result: JSON) { completeTask(id: $id, result: $result) { ${TASK_FIELDS} } }`;
const FAIL = `mutation($id: ID!, $message: String!, $code: String) { failTask(id: $id, message: $message, code: $code) { ${TASK_FIELDS} } }`;
const TASK_COMPLETED = `subscription($userId: ID!, $after: String) {
  taskCompleted(userId: $userId, after: $after) { cursor replayed task { id status result } }
}`;

/** The three service-role mutations on external tasks, each with valid arguments besides `id`. */
const EXTERNAL_MUTATIONS = [
  { name: 'reportTaskProgress', query: REPORT, args: { progress: 0.5 } },
  { name: 'completeTask', query: COMPLETE, args: { result: { ok: true } } },
  { name: 'failTask', query: FAIL, args: { message: 'broke', code: 'BROKEN' } },
] as const;

let service: InProcessApp;
let serviceToken: string;

beforeAll(async () => {
  service = await createInProcessApp();
  serviceToken = await service.token(freshUser('system'), { service: true });
});
afterAll(async () => {
  await service?.stop();
});

/** Starts a task as `token` and returns it; fails the test on errors. */
async function start(token: string, input: Record<string, unknown>): Promise<TaskData> {
  const response = await service.gql<{ startTask: TaskData }>(START, { input }, token);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  const task = response.data?.startTask;
  if (!task) throw new Error('startTask returned no task');
  return task;
}

/** A fresh user, its token, and one external task of theirs started by the service. */
async function externalTaskOfFreshUser(): Promise<{ userId: string; token: string; task: TaskData }> {
  const userId = freshUser('ext');
  const token = await service.token(userId);
  const task = await start(serviceToken, { kind: 'external', userId, input: { job: 'render' } });
  return { userId, token, task };
}

async function statusOf(id: string, token = serviceToken): Promise<string | undefined> {
  const response = await service.gql<{ task: TaskData | null }>(GET_TASK, { id }, token);
  expect(response.errors).toBeUndefined();
  return response.data?.task?.status;
}

describe('auth', () => {
  it('should answer viewer without a token with UNAUTHENTICATED and HTTP 401', async () => {
    const response = await service.gql(VIEWER, {}, null);
    expect(response.status).toBe(401);
    expect(onlyError(response).extensions['code']).toBe('UNAUTHENTICATED');
  });

  it('should answer startTask without a token with UNAUTHENTICATED and HTTP 401', async () => {
    const response = await service.gql(START, { input: { kind: 'echo', input: { value: 1 } } }, null);
    expect(response.status).toBe(401);
    expect(onlyError(response).extensions['code']).toBe('UNAUTHENTICATED');
    expect(response.data ?? null).toBeNull();
  });

  it.each([
    ['a string that is no JWT', async () => 'not-a-jwt'],
    [
      'a token signed with another secret',
      () =>
        new SignJWT({ roles: [] })
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('mallory')
          .setExpirationTime('1h')
          .sign(new TextEncoder().encode('a-different-secret-that-is-also-32-bytes-long!')),
    ],
    ['an expired token', () => service.token('late-user', { expiresIn: -60 })],
  ])('should refuse %s with UNAUTHENTICATED and HTTP 401', async (_what, makeToken) => {
    const response = await service.gql(VIEWER, {}, await makeToken());
    expect(response.status).toBe(401);
    expect(onlyError(response).extensions['code']).toBe('UNAUTHENTICATED');
  });

  it('should show the caller the token names, with the service role only for a service token', async () => {
    const userId = freshUser('who');
    const asUser = await service.gql<{ viewer: { userId: string; roles: string[] } }>(
      VIEWER,
      {},
      await service.token(userId),
    );
    expect(asUser.status).toBe(200);
    expect(asUser.data?.viewer).toMatchObject({ userId, roles: [] });
    const asService = await service.gql<{ viewer: { roles: string[] } }>(VIEWER, {}, serviceToken);
    expect(asService.data?.viewer.roles).toEqual(['service']);
  });

  it('should let a service caller start a task on behalf of a user, who then owns it', async () => {
    const userId = freshUser('owner');
    const task = await start(serviceToken, { kind: 'echo', userId, input: { value: 'hi' } });
    expect(task).toMatchObject({ userId, status: 'QUEUED' });
    expect(await statusOf(task.id, await service.token(userId))).toBe('QUEUED');
  });

  it('should refuse a user starting a task on behalf of another user with FORBIDDEN', async () => {
    const victim = freshUser('victim');
    const response = await service.gql(
      START,
      { input: { kind: 'echo', userId: victim, input: { value: 1 } } },
      await service.token(freshUser('mallory')),
    );
    expect(onlyError(response).extensions['code']).toBe('FORBIDDEN');
    const victimTasks = await service.gql<PageData>(PAGE, { userId: victim }, serviceToken);
    expect(victimTasks.data?.tasks.edges).toEqual([]);
  });
});

describe('startTask validation', () => {
  it('should refuse an unknown kind with BAD_USER_INPUT on field kind, listing the known kinds', async () => {
    const response = await service.gql(
      START,
      { input: { kind: 'no-such-kind', input: {} } },
      await service.token(freshUser('u')),
    );
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    expect(extensions['field']).toBe('kind');
    expect(extensions['knownKinds']).toEqual(
      expect.arrayContaining(['sleep', 'echo', 'checksum', 'external']),
    );
    expect(extensions['knownKinds']).not.toContain('no-such-kind');
  });

  it("should refuse input failing the kind's schema with BAD_USER_INPUT, its field and every problem", async () => {
    const response = await service.gql(
      START,
      { input: { kind: 'sleep', input: { ms: 'soon', extra: 1 } } },
      await service.token(freshUser('u')),
    );
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    const problems = extensions['problems'] as { path: string; message: string }[];
    expect(problems.map((problem) => problem.path)).toEqual(
      expect.arrayContaining(['input.ms', 'input.extra']),
    );
    expect(extensions['field']).toBe(problems[0]?.path);
  });

  it('should accept input that fits the schema (the control for the refusals above)', async () => {
    const task = await start(await service.token(freshUser('u')), { kind: 'sleep', input: { ms: 10 } });
    expect(task).toMatchObject({ kind: 'sleep', status: 'QUEUED' });
  });

  it('should give the same task for the same user and idempotency key', async () => {
    const token = await service.token(freshUser('idem'));
    const input = { kind: 'echo', input: { value: 42 }, idempotencyKey: 'order-1' };
    const first = await start(token, input);
    const second = await start(token, input);
    expect(second.id).toBe(first.id);
  });

  it('should keep idempotency keys per user: another user with the same key gets its own task', async () => {
    const input = { kind: 'echo', input: { value: 42 }, idempotencyKey: 'shared-key' };
    const mine = await start(await service.token(freshUser('idem-a')), input);
    const theirs = await start(await service.token(freshUser('idem-b')), input);
    expect(theirs.id).not.toBe(mine.id);
  });

  it('should refuse the same idempotency key with another input with CONFLICT naming the task', async () => {
    const token = await service.token(freshUser('idem'));
    const first = await start(token, { kind: 'echo', input: { value: 1 }, idempotencyKey: 'k' });
    const response = await service.gql(
      START,
      { input: { kind: 'echo', input: { value: 2 }, idempotencyKey: 'k' } },
      token,
    );
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('CONFLICT');
    expect(extensions['taskId']).toBe(first.id);
  });

  it.each([
    ['empty', ''],
    ['longer than 200 characters', 'k'.repeat(201)],
  ])('should refuse an %s idempotency key with BAD_USER_INPUT', async (_what, idempotencyKey) => {
    const response = await service.gql(
      START,
      { input: { kind: 'echo', input: { value: 1 }, idempotencyKey } },
      await service.token(freshUser('u')),
    );
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    expect(extensions['field']).toBe('idempotencyKey');
  });

  it('should accept an idempotency key of exactly 200 characters', async () => {
    const token = await service.token(freshUser('u'));
    const task = await start(token, { kind: 'echo', input: { value: 1 }, idempotencyKey: 'k'.repeat(200) });
    expect(task.status).toBe('QUEUED');
  });
});

describe('task and tasks access', () => {
  it("should answer another user's task with null, as for an unknown id", async () => {
    const task = await start(await service.token(freshUser('alice')), { kind: 'echo', input: { value: 1 } });
    const response = await service.gql(GET_TASK, { id: task.id }, await service.token(freshUser('bob')));
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ task: null });
  });

  it("should refuse cancelling another user's task with NOT_FOUND and leave it QUEUED", async () => {
    const task = await start(await service.token(freshUser('alice')), { kind: 'sleep', input: { ms: 10 } });
    const response = await service.gql(CANCEL, { id: task.id }, await service.token(freshUser('bob')));
    expect(onlyError(response).extensions).toMatchObject({ code: 'NOT_FOUND', id: task.id });
    expect(await statusOf(task.id)).toBe('QUEUED');
  });

  it("should refuse listing another user's tasks with FORBIDDEN", async () => {
    const response = await service.gql(
      PAGE,
      { userId: freshUser('alice') },
      await service.token(freshUser('bob')),
    );
    expect(onlyError(response).extensions['code']).toBe('FORBIDDEN');
  });

  it('should answer task with null for an unknown id', async () => {
    const response = await service.gql<{ task: TaskData | null }>(
      GET_TASK,
      { id: 'no-such-task' },
      await service.token(freshUser('u')),
    );
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ task: null });
  });

  it('should refuse cancelling an unknown id with NOT_FOUND', async () => {
    const response = await service.gql(CANCEL, { id: 'no-such-task' }, await service.token(freshUser('u')));
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('NOT_FOUND');
    expect(extensions['id']).toBe('no-such-task');
  });

  it('should page through tasks newest first with first/after and pageInfo', async () => {
    const token = await service.token(freshUser('pager'));
    const started: string[] = [];
    for (const value of [1, 2, 3]) {
      started.push((await start(token, { kind: 'echo', input: { value } })).id);
    }
    const firstPage = await service.gql<PageData>(PAGE, { first: 2 }, token);
    expect(firstPage.errors).toBeUndefined();
    const one = firstPage.data?.tasks;
    expect(one?.edges.map((edge) => edge.node.id)).toEqual([started[2], started[1]]);
    expect(one?.pageInfo.hasNextPage).toBe(true);
    expect(one?.pageInfo.endCursor).toBe(one?.edges[1]?.cursor);

    const secondPage = await service.gql<PageData>(PAGE, { first: 2, after: one?.pageInfo.endCursor }, token);
    expect(secondPage.errors).toBeUndefined();
    const two = secondPage.data?.tasks;
    expect(two?.edges.map((edge) => edge.node.id)).toEqual([started[0]]);
    expect(two?.pageInfo.hasNextPage).toBe(false);
  });

  it('should refuse an after that is no page cursor with BAD_USER_INPUT', async () => {
    const response = await service.gql(
      PAGE,
      { first: 2, after: 'not-a-cursor' },
      await service.token(freshUser('u')),
    );
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    expect(extensions['field']).toBe('after');
  });

  it.each([-1, 101])('should refuse first: %i with BAD_USER_INPUT', async (first) => {
    const response = await service.gql(PAGE, { first }, await service.token(freshUser('u')));
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    expect(extensions['field']).toBe('first');
  });

  it.each([0, 100])('should accept first: %i', async (first) => {
    const response = await service.gql<PageData>(PAGE, { first }, await service.token(freshUser('u')));
    expect(response.errors).toBeUndefined();
    expect(response.data?.tasks.edges).toEqual([]);
  });
});

describe('cancelTask', () => {
  it('should cancel a QUEUED task: CANCELLED with error code CANCELLED', async () => {
    const token = await service.token(freshUser('canceller'));
    const task = await start(token, { kind: 'sleep', input: { ms: 60_000 } });
    expect(task.status).toBe('QUEUED');
    const response = await service.gql<{ cancelTask: TaskData }>(CANCEL, { id: task.id }, token);
    expect(response.errors).toBeUndefined();
    expect(response.data?.cancelTask).toMatchObject({ id: task.id, status: 'CANCELLED' });
    expect(response.data?.cancelTask.error?.code).toBe('CANCELLED');
    expect(response.data?.cancelTask.finishedAt).toEqual(expect.any(String));
    expect(await statusOf(task.id, token)).toBe('CANCELLED');
  });

  it('should refuse cancelling a cancelled task with CONFLICT and its status', async () => {
    const token = await service.token(freshUser('canceller'));
    const task = await start(token, { kind: 'sleep', input: { ms: 60_000 } });
    const first = await service.gql(CANCEL, { id: task.id }, token);
    expect(first.errors).toBeUndefined();
    const again = await service.gql(CANCEL, { id: task.id }, token);
    const { extensions } = onlyError(again);
    expect(extensions['code']).toBe('CONFLICT');
    expect(extensions['status']).toBe('CANCELLED');
  });
});

describe('external kinds', () => {
  it('should list the external kind as external in taskKinds', async () => {
    const response = await service.gql<{ taskKinds: { name: string; external: boolean }[] }>(
      '{ taskKinds { name external } }',
      {},
      serviceToken,
    );
    const external = response.data?.taskKinds.filter((kind) => kind.external).map((kind) => kind.name);
    expect(external).toEqual(['external']);
  });

  it.each(EXTERNAL_MUTATIONS)(
    "should refuse $name by the task's own user with FORBIDDEN and leave the task QUEUED",
    async ({ query, args }) => {
      const { token, task } = await externalTaskOfFreshUser();
      const response = await service.gql(query, { id: task.id, ...args }, token);
      expect(onlyError(response).extensions['code']).toBe('FORBIDDEN');
      expect(await statusOf(task.id)).toBe('QUEUED');
    },
  );

  it.each(EXTERNAL_MUTATIONS)(
    'should refuse $name on a task of a kind the service runs with BAD_USER_INPUT',
    async ({ query, args }) => {
      const task = await start(serviceToken, { kind: 'sleep', input: { ms: 60_000 } });
      const response = await service.gql(query, { id: task.id, ...args }, serviceToken);
      const { extensions } = onlyError(response);
      expect(extensions['code']).toBe('BAD_USER_INPUT');
      expect(extensions['field']).toBe('id');
      expect(await statusOf(task.id)).toBe('QUEUED');
    },
  );

  it.each([-0.1, 1.5])('should refuse progress %s with BAD_USER_INPUT', async (progress) => {
    const { task } = await externalTaskOfFreshUser();
    const response = await service.gql(REPORT, { id: task.id, progress }, serviceToken);
    const { extensions } = onlyError(response);
    expect(extensions['code']).toBe('BAD_USER_INPUT');
    expect(extensions['field']).toBe('progress');
  });

  it('should take progress in range: the QUEUED task becomes RUNNING with it', async () => {
    const { task } = await externalTaskOfFreshUser();
    const response = await service.gql<{ reportTaskProgress: TaskData }>(
      REPORT,
      { id: task.id, progress: 0.5 },
      serviceToken,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.reportTaskProgress).toMatchObject({ status: 'RUNNING', progress: 0.5 });
  });

  it.each(['broken', 'Broken_Code', 'NOT-SNAKE', '1ST'])(
    'should refuse failTask code %s (not UPPER_SNAKE) with BAD_USER_INPUT',
    async (code) => {
      const { task } = await externalTaskOfFreshUser();
      const response = await service.gql(FAIL, { id: task.id, message: 'broke', code }, serviceToken);
      const { extensions } = onlyError(response);
      expect(extensions['code']).toBe('BAD_USER_INPUT');
      expect(extensions['field']).toBe('code');
      expect(await statusOf(task.id)).toBe('QUEUED');
    },
  );

  it('should fail an external task with an UPPER_SNAKE code: FAILED with that code', async () => {
    const { task } = await externalTaskOfFreshUser();
    const response = await service.gql<{ failTask: TaskData }>(
      FAIL,
      { id: task.id, message: 'renderer crashed', code: 'RENDER_CRASHED' },
      serviceToken,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.failTask.status).toBe('FAILED');
    expect(response.data?.failTask.error).toEqual({ code: 'RENDER_CRASHED', message: 'renderer crashed' });
  });

  it('should refuse completing a completed task with CONFLICT and keep the first result', async () => {
    const { task } = await externalTaskOfFreshUser();
    const first = await service.gql<{ completeTask: TaskData }>(
      COMPLETE,
      { id: task.id, result: { n: 1 } },
      serviceToken,
    );
    expect(first.errors).toBeUndefined();
    expect(first.data?.completeTask).toMatchObject({ status: 'SUCCEEDED', result: { n: 1 } });
    const again = await service.gql(COMPLETE, { id: task.id, result: { n: 2 } }, serviceToken);
    const { extensions } = onlyError(again);
    expect(extensions['code']).toBe('CONFLICT');
    expect(extensions['status']).toBe('SUCCEEDED');
    const current = await service.gql<{ task: TaskData }>(GET_TASK, { id: task.id }, serviceToken);
    expect(current.data?.task.result).toEqual({ n: 1 });
  });
});

describe('rate limit on startTask', () => {
  let limited: InProcessApp;
  let limitedServiceToken: string;

  beforeAll(async () => {
    limited = await createInProcessApp({ env: { RATE_LIMIT_START_PER_MINUTE: '2' } });
    limitedServiceToken = await limited.token(freshUser('system'), { service: true });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  const startEcho = (token: string, userId?: string) =>
    limited.gql<{ startTask: TaskData }>(
      START,
      { input: { kind: 'echo', input: { value: 1 }, ...(userId ? { userId } : {}) } },
      token,
    );

  it("should refuse a user's third start in a minute with RATE_LIMITED, retryAfter, HTTP 429 and Retry-After", async () => {
    const token = await limited.token(freshUser('eager'));
    for (const _ of [1, 2]) {
      const allowed = await startEcho(token);
      expect(allowed.errors, JSON.stringify(allowed.errors)).toBeUndefined();
      expect(allowed.status).toBe(200);
    }
    const third = await startEcho(token);
    expect(third.status).toBe(429);
    const { extensions } = onlyError(third);
    expect(extensions['code']).toBe('RATE_LIMITED');
    const retryAfter = extensions['retryAfter'];
    expect(retryAfter).toEqual(expect.any(Number));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(third.headers.get('retry-after')).toBe(String(retryAfter));
  });

  it("should not count one user's starts against another user", async () => {
    const first = await limited.token(freshUser('eager'));
    for (const _ of [1, 2]) await startEcho(first);
    const other = await startEcho(await limited.token(freshUser('patient')));
    expect(other.errors, JSON.stringify(other.errors)).toBeUndefined();
  });

  it('should not limit a service caller', async () => {
    const userId = freshUser('served');
    for (let i = 0; i < 5; i++) {
      const response = await startEcho(limitedServiceToken, i % 2 === 0 ? userId : undefined);
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      expect(response.status).toBe(200);
    }
  });
});

describe('viewer.lastEventCursor', () => {
  it('should be a string for a user with no events yet', async () => {
    const response = await service.gql<{ viewer: { lastEventCursor: string | null } }>(
      VIEWER,
      {},
      await service.token(freshUser('fresh')),
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.viewer.lastEventCursor).toEqual(expect.any(String));
  });

  it('should come before a completion made through completeTask, which the log then holds after it', async () => {
    const userId = freshUser('watcher');
    const token = await service.token(userId);
    const before = await service.gql<{ viewer: { lastEventCursor: string } }>(VIEWER, {}, token);
    const cursor = before.data?.viewer.lastEventCursor;
    expect(cursor).toEqual(expect.any(String));

    const task = await start(serviceToken, { kind: 'external', userId, input: { job: 'render' } });
    const completed = await service.gql(COMPLETE, { id: task.id, result: { url: 'u' } }, serviceToken);
    expect(completed.errors).toBeUndefined();

    expect(await statusOf(task.id, token)).toBe('SUCCEEDED');
    const succeeded = await service.gql<{ tasks: { nodes: { id: string }[] } }>(SUCCEEDED_IDS, {}, token);
    expect(succeeded.data?.tasks.nodes.map((node) => node.id)).toEqual([task.id]);

    const after = await service.gql<{ viewer: { lastEventCursor: string } }>(VIEWER, {}, token);
    const newest = after.data?.viewer.lastEventCursor;
    expect(newest).toEqual(expect.any(String));
    expect(newest).not.toBe(cursor);

    const replay = await service.firstEvent<{
      taskCompleted: {
        cursor: string;
        replayed: boolean;
        task: { id: string; status: string; result: unknown };
      };
    }>(TASK_COMPLETED, { userId, after: cursor }, token);
    expect(replay.errors).toBeUndefined();
    expect(replay.data?.taskCompleted).toEqual({
      cursor: newest,
      replayed: true,
      task: { id: task.id, status: 'SUCCEEDED', result: { url: 'u' } },
    });
  });
});
