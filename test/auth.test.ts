import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.js';
import {
  type GraphQLResponse,
  startTaskWith,
  startTestServer,
  TEST_SECRET,
  type TestServer,
  waitForTaskStatus,
} from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

const OTHER_SECRET = 'a-different-secret-that-is-also-32-bytes-long!';

interface ViewerData {
  viewer: { userId: string; roles: string[] };
}
interface TaskData {
  id: string;
  userId: string;
  kind: string;
  status: string;
  progress: number;
  result: unknown;
  error: { code: string; message: string } | null;
}
type Message = Record<string, unknown>;

const VIEWER = '{ viewer { userId roles } }';
const TASK_FIELDS = 'id userId kind status progress result error { code message }';
const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const LIST_TASKS = `query($userId: ID) { tasks(userId: $userId, first: 100) { nodes { ${TASK_FIELDS} } } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const REPORT = `mutation($id: ID!, $p: Float!) { reportTaskProgress(id: $id, progress: $p) { ${TASK_FIELDS} } }`;
const COMPLETE = `mutation($id: ID!, $r: JSON) { completeTask(id: $id, result: $r) { ${TASK_FIELDS} } }`;
const FAIL = `mutation($id: ID!, $m: String!) { failTask(id: $id, message: $m, code: "BROKEN") { ${TASK_FIELDS} } }`;
const TASK_COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;
const TASK_UPDATED = `subscription($id: ID!) { taskUpdated(id: $id) { ${TASK_FIELDS} } }`;

/** `extensions.code` of a GraphQL error (formatted or thrown), or undefined. */
function codeOf(error: unknown): unknown {
  if (typeof error !== 'object' || error === null) return undefined;
  const extensions = (error as { extensions?: unknown }).extensions;
  if (typeof extensions !== 'object' || extensions === null) return undefined;
  return (extensions as { code?: unknown }).code;
}

/** The codes of the errors of a response or of a graphql-ws `next`/`error` payload. */
function codes(errors: readonly unknown[] | undefined): unknown[] {
  return (errors ?? []).map(codeOf);
}

/** Errors carried by a raw graphql-ws `next` (payload.errors) or `error` (payload) message. */
function messageErrors(message: Message): unknown[] {
  const payload = message['payload'];
  if (Array.isArray(payload)) return payload;
  if (typeof payload === 'object' && payload !== null) {
    const errors = (payload as { errors?: unknown }).errors;
    if (Array.isArray(errors)) return errors;
  }
  return [];
}

/** POSTs `query` with the Authorization header set to exactly `authorization`. */
async function postWithAuthorization(
  server: TestServer,
  authorization: string,
  query: string,
): Promise<GraphQLResponse<ViewerData>> {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization,
    },
    body: JSON.stringify({ query }),
  });
  const body = (await response.json()) as Omit<GraphQLResponse<ViewerData>, 'status'>;
  return { status: response.status, ...body };
}

/** A JWT whose header says `alg: none`, with no signature. */
function unsignedToken(userId: string): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: userId, roles: ['service'], exp: now + 600 })}.`;
}

/** A correctly signed token without a `sub` claim. */
function tokenWithoutSubject(): Promise<string> {
  return new SignJWT({ roles: [] })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(TEST_SECRET));
}

const startTask = (server: TestServer, token: string, input: Record<string, unknown>) =>
  startTaskWith<TaskData>(server, token, START, input);

const waitForStatus = (server: TestServer, token: string, id: string, status: string) =>
  waitForTaskStatus<TaskData>(server, token, GET_TASK, id, status);

describe('auth over HTTP', () => {
  let server: TestServer;
  let alice: string;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.token('alice');
  });
  afterAll(() => server.stop());

  it('should return the viewer of a valid user token with no roles', async () => {
    const response = await server.gql<ViewerData>(VIEWER, {}, alice);
    expect(response.status).toBe(200);
    expect(response.errors).toBeUndefined();
    expect(response.data?.viewer).toEqual({ userId: 'alice', roles: [] });
  });

  it('should return roles ["service"] for a service token', async () => {
    const service = await server.token('billing', { service: true });
    const response = await server.gql<ViewerData>(VIEWER, {}, service);
    expect(response.errors).toBeUndefined();
    expect(response.data?.viewer).toEqual({ userId: 'billing', roles: ['service'] });
  });

  it('should accept the scheme "bearer" in any case', async () => {
    const response = await postWithAuthorization(server, `bearer ${alice}`, VIEWER);
    expect(response.data?.viewer.userId).toBe('alice');
  });

  it.each([
    ['viewer', VIEWER, {}],
    ['task', GET_TASK, { id: 'some-id' }],
    ['tasks', LIST_TASKS, {}],
    ['taskKinds', '{ taskKinds { name } }', {}],
    ['startTask', START, { input: { kind: 'echo', input: { value: 1 } } }],
    ['cancelTask', CANCEL, { id: 'some-id' }],
  ])(
    'should answer %s without a token with UNAUTHENTICATED and HTTP 401',
    async (field, query, variables) => {
      const response = await server.gql(query, variables, null);
      expect(response.status).toBe(401);
      expect(codes(response.errors)).toEqual(['UNAUTHENTICATED']);
      expect(response.errors?.[0]?.path).toEqual([field]);
      expect(response.data?.[field] ?? null).toBeNull();
    },
  );

  it('should not start a task for a request without a token', async () => {
    await server.gql(START, { input: { kind: 'echo', input: { value: 'anonymous' } } }, null);
    const service = await server.token('auditor', { service: true });
    const all = await server.gql<{ tasks: { nodes: TaskData[] } }>(LIST_TASKS, {}, service);
    expect(all.data?.tasks.nodes.filter((task) => task.kind === 'echo')).toEqual([]);
  });

  it.each<[string, () => Promise<string>, RegExp]>([
    ['an expired token', () => mintToken(TEST_SECRET, 'alice', { expiresIn: -10 }), /expired/],
    [
      'a token signed with another secret',
      () => mintToken(OTHER_SECRET, 'alice', { service: true }),
      /signature/,
    ],
    ['a token that is not a JWT', async () => 'not-a-jwt', /malformed/],
    ['a JWT with three garbage parts', async () => 'aaa.bbb.ccc', /malformed/],
    ['an unsigned token (alg: none)', async () => unsignedToken('alice'), /token/],
    ['a token without a sub claim', tokenWithoutSubject, /sub/],
  ])('should refuse %s with UNAUTHENTICATED and HTTP 401', async (_what, makeToken, message) => {
    const token = await makeToken();
    const response = await postWithAuthorization(server, `Bearer ${token}`, VIEWER);
    expect(response.status).toBe(401);
    expect(codes(response.errors)).toEqual(['UNAUTHENTICATED']);
    expect(response.errors?.[0]?.message).toMatch(message);
    expect(response.data ?? null).toBeNull();
  });

  it.each([
    ['the wrong scheme "Basic x"', 'Basic x'],
    ['"Bearer" without a token', 'Bearer '],
    ['a bare token without a scheme', 'eyJhbGciOiJIUzI1NiJ9.e30.x'],
    ['two tokens', 'Bearer a b'],
  ])(
    'should refuse an Authorization header with %s with UNAUTHENTICATED and HTTP 401',
    async (_what, header) => {
      const response = await postWithAuthorization(server, header, VIEWER);
      expect(response.status).toBe(401);
      expect(codes(response.errors)).toEqual(['UNAUTHENTICATED']);
      expect(response.errors?.[0]?.message).toMatch(/Bearer/);
    },
  );

  it('should keep serving a valid client after refusing bad tokens', async () => {
    const refusals = await Promise.all(
      Array.from({ length: 20 }, (_, index) => postWithAuthorization(server, `Bearer bad-${index}`, VIEWER)),
    );
    expect(refusals.every((response) => response.status === 401)).toBe(true);
    const response = await server.gql<ViewerData>(VIEWER, {}, alice);
    expect(response.data?.viewer.userId).toBe('alice');
  });
});

describe('auth over graphql-ws', () => {
  let server: TestServer;
  let alice: string;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.token('alice');
  });
  afterAll(() => server.stop());

  it('should accept the token in connectionParams.authorization', async () => {
    const client = createWsClient(server.wsUrl, alice);
    const result = collect<ViewerData>(client, VIEWER);
    await result.done;
    expect(result.errors).toEqual([]);
    expect(result.values).toEqual([{ viewer: { userId: 'alice', roles: [] } }]);
  });

  it("should accept the token in the upgrade request's Authorization header", async () => {
    const raw = await openRawSocket(server.wsUrl, 'graphql-transport-ws', {
      authorization: `Bearer ${alice}`,
    });
    await raw.init();
    raw.send({ id: '1', type: 'subscribe', payload: { query: VIEWER } });
    const next = await raw.next((m) => m['type'] === 'next' && m['id'] === '1', 'the viewer');
    expect(next['payload']).toEqual({ data: { viewer: { userId: 'alice', roles: [] } } });
    raw.socket.close();
  });

  it.each<[string, () => Promise<string>, string]>([
    ['malformed', async () => 'Bearer not-a-jwt', 'token is malformed'],
    [
      'expired',
      async () => `Bearer ${await mintToken(TEST_SECRET, 'alice', { expiresIn: -10 })}`,
      'token expired',
    ],
    [
      'forged',
      async () => `Bearer ${await mintToken(OTHER_SECRET, 'alice', { service: true })}`,
      'token signature is invalid',
    ],
    ['of the wrong scheme', async () => 'Basic x', 'Bearer'],
  ])(
    'should close with 4403 and a reason when the connectionParams token is %s',
    async (_what, makeHeader, reason) => {
      const raw = await openRawSocket(server.wsUrl);
      raw.send({ type: 'connection_init', payload: { authorization: await makeHeader() } });
      const closed = await raw.closed;
      expect(closed.code).toBe(4403);
      expect(closed.reason).toContain(reason);
      expect(raw.messages.find((m) => m['type'] === 'connection_ack')).toBeUndefined();
    },
  );

  it('should close with 4403 when the upgrade Authorization header holds a bad token', async () => {
    const raw = await openRawSocket(server.wsUrl, 'graphql-transport-ws', {
      authorization: 'Bearer garbage',
    });
    raw.send({ type: 'connection_init', payload: {} });
    const closed = await raw.closed;
    expect(closed.code).toBe(4403);
    expect(closed.reason).toContain('token is malformed');
  });

  it('should report a 4403 close to a graphql-ws client whose token is refused', async () => {
    const client = createWsClient(server.wsUrl, 'forged-token');
    const result = collect<ViewerData>(client, VIEWER);
    await result.done;
    expect(result.values).toEqual([]);
    const [error] = result.errors;
    expect((error as { code?: unknown }).code).toBe(4403);
  });

  it('should ack a connection without a token but answer its operations with UNAUTHENTICATED', async () => {
    const client = createWsClient(server.wsUrl, null);
    const subscription = collect(client, TASK_COMPLETED, { u: 'alice' });
    await subscription.done;
    expect(subscription.values).toEqual([]);
    expect(codes(subscription.errors)).toEqual(['UNAUTHENTICATED']);

    const query = collect(client, VIEWER);
    await query.done;
    expect(codes(query.errors)).toEqual(['UNAUTHENTICATED']);
  });

  it('should acknowledge a raw connection without a token and refuse its subscription with UNAUTHENTICATED', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init();
    raw.send({ id: 's', type: 'subscribe', payload: { query: TASK_COMPLETED, variables: { u: 'alice' } } });
    const answer = await raw.next(
      (m) => m['id'] === 's' && (m['type'] === 'next' || m['type'] === 'error'),
      'an answer',
    );
    expect(codes(messageErrors(answer))).toEqual(['UNAUTHENTICATED']);
    await raw.next((m) => m['id'] === 's' && m['type'] === 'complete', 'complete');
    raw.socket.close();
  });

  it('should accept a GraphiQL-style per-operation Authorization header on a connection opened without a token', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init();
    raw.send({
      id: 'q',
      type: 'subscribe',
      payload: { query: VIEWER, extensions: { headers: { Authorization: `Bearer ${alice}` } } },
    });
    const next = await raw.next((m) => m['type'] === 'next' && m['id'] === 'q', 'the viewer');
    expect(next['payload']).toEqual({ data: { viewer: { userId: 'alice', roles: [] } } });

    // The header applies to that operation only: the next one, without it, is anonymous.
    raw.send({ id: 'anon', type: 'subscribe', payload: { query: VIEWER } });
    const anonymous = await raw.next(
      (m) => m['type'] === 'next' && m['id'] === 'anon',
      'the anonymous answer',
    );
    expect(codes(messageErrors(anonymous))).toEqual(['UNAUTHENTICATED']);
    raw.socket.close();
  });

  it('should answer a per-operation header with a bad token with an UNAUTHENTICATED error message and keep the socket', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init();
    raw.send({
      id: 'bad',
      type: 'subscribe',
      payload: { query: VIEWER, extensions: { headers: { authorization: 'Bearer nonsense' } } },
    });
    const error = await raw.next((m) => m['type'] === 'error' && m['id'] === 'bad', 'an error message');
    expect(codes(messageErrors(error))).toEqual(['UNAUTHENTICATED']);

    raw.send({
      id: 'good',
      type: 'subscribe',
      payload: { query: VIEWER, extensions: { headers: { authorization: `Bearer ${alice}` } } },
    });
    const next = await raw.next((m) => m['type'] === 'next' && m['id'] === 'good', 'the viewer');
    expect(next['payload']).toEqual({ data: { viewer: { userId: 'alice', roles: [] } } });
    raw.socket.close();
  });

  it('should close with 4403 when the token expires', async () => {
    const shortLived = await server.token('alice', { expiresIn: 2 });
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${shortLived}` });
    raw.send({
      id: 'live',
      type: 'subscribe',
      payload: { query: TASK_COMPLETED, variables: { u: 'alice' } },
    });
    const closed = await raw.closed;
    expect(closed.code).toBe(4403);
    expect(closed.reason).toContain('token expired');
  });

  it('should end the subscriptions of a graphql-ws client with a 4403 close when its token expires', async () => {
    const shortLived = await server.token('alice', { expiresIn: 2 });
    const client = createWsClient(server.wsUrl, shortLived);
    const subscription = collect(client, TASK_COMPLETED, { u: 'alice' });
    await subscription.done;
    const [error] = subscription.errors;
    expect((error as { code?: unknown }).code).toBe(4403);
  });

  it('should keep serving a valid client on other connections after closing refused ones', async () => {
    const client = createWsClient(server.wsUrl, alice);
    const refused = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const raw = await openRawSocket(server.wsUrl);
        raw.send({ type: 'connection_init', payload: { authorization: 'Bearer junk' } });
        return (await raw.closed).code;
      }),
    );
    expect(refused).toEqual([4403, 4403, 4403, 4403, 4403]);

    const task = await startTask(server, alice, { kind: 'echo', input: { value: 'still here' } });
    const updates = collect<{ taskUpdated: TaskData }>(client, TASK_UPDATED, { id: task.id });
    await updates.done;
    expect(updates.errors).toEqual([]);
    expect(updates.values.at(-1)?.taskUpdated).toMatchObject({ id: task.id, status: 'SUCCEEDED' });
  });
});

describe('per-user authorization', () => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let service: string;
  let carol: string;
  /** Bob's finished echo task. */
  let bobsDone: TaskData;
  /** Bob's external task: stays QUEUED until a service finishes it. */
  let bobsExternal: TaskData;

  beforeAll(async () => {
    server = await startTestServer();
    [alice, bob, service, carol] = await Promise.all([
      server.token('alice'),
      server.token('bob'),
      server.token('ops', { service: true }),
      server.token('carol'),
    ]);
    bobsDone = await startTask(server, bob, { kind: 'echo', input: { value: 'bob' } });
    await waitForStatus(server, bob, bobsDone.id, 'SUCCEEDED');
    bobsExternal = await startTask(server, bob, { kind: 'external', input: { job: 'bob' } });
  });
  afterAll(() => server.stop());

  // After each refusal, the same server still serves an unrelated valid client.
  afterEach(async () => {
    const response = await server.gql<ViewerData>(VIEWER, {}, carol);
    expect(response.errors).toBeUndefined();
    expect(response.data?.viewer.userId).toBe('carol');
  });

  it("should answer a user reading another user's task with null, as for a task that does not exist", async () => {
    const response = await server.gql<{ task: TaskData | null }>(GET_TASK, { id: bobsDone.id }, alice);
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ task: null });
  });

  it('should let the owner read their own task', async () => {
    const response = await server.gql<{ task: TaskData | null }>(GET_TASK, { id: bobsDone.id }, bob);
    expect(response.errors).toBeUndefined();
    expect(response.data?.task).toMatchObject({ id: bobsDone.id, userId: 'bob', status: 'SUCCEEDED' });
  });

  it("should refuse a user listing another user's tasks with FORBIDDEN", async () => {
    const response = await server.gql<{ tasks: { nodes: TaskData[] } }>(LIST_TASKS, { userId: 'bob' }, alice);
    expect(codes(response.errors)).toEqual(['FORBIDDEN']);
    expect(response.data ?? null).toBeNull();
  });

  it("should list only the caller's own tasks when a user gives no userId", async () => {
    const own = await startTask(server, alice, { kind: 'echo', input: { value: 'alice' } });
    const response = await server.gql<{ tasks: { nodes: TaskData[] } }>(LIST_TASKS, {}, alice);
    expect(response.errors).toBeUndefined();
    expect(response.data?.tasks.nodes.map((task) => task.id)).toEqual([own.id]);
  });

  it("should refuse a user cancelling another user's task with NOT_FOUND and leave it untouched", async () => {
    const response = await server.gql(CANCEL, { id: bobsExternal.id }, alice);
    expect(codes(response.errors)).toEqual(['NOT_FOUND']);
    const after = await server.gql<{ task: TaskData }>(GET_TASK, { id: bobsExternal.id }, bob);
    expect(after.data?.task.status).toBe('QUEUED');
  });

  it('should refuse a user starting a task on behalf of another user with FORBIDDEN', async () => {
    const response = await server.gql(
      START,
      { input: { kind: 'echo', input: { value: 1 }, userId: 'bob' } },
      alice,
    );
    expect(codes(response.errors)).toEqual(['FORBIDDEN']);
    const bobs = await server.gql<{ tasks: { nodes: TaskData[] } }>(LIST_TASKS, {}, bob);
    expect(bobs.data?.tasks.nodes.map((task) => task.id).sort()).toEqual(
      [bobsDone.id, bobsExternal.id].sort(),
    );
  });

  it('should let a user start a task naming their own userId', async () => {
    const task = await startTask(server, alice, { kind: 'echo', input: { value: 2 }, userId: 'alice' });
    expect(task.userId).toBe('alice');
  });

  it("should refuse a user subscribing to another user's taskCompleted with FORBIDDEN", async () => {
    const client = createWsClient(server.wsUrl, alice);
    const subscription = collect(client, TASK_COMPLETED, { u: 'bob' });
    await subscription.done;
    expect(subscription.values).toEqual([]);
    expect(codes(subscription.errors)).toEqual(['FORBIDDEN']);
  });

  it("should refuse a user subscribing to taskUpdated of another user's task with NOT_FOUND", async () => {
    const client = createWsClient(server.wsUrl, alice);
    const subscription = collect(client, TASK_UPDATED, { id: bobsExternal.id });
    await subscription.done;
    expect(subscription.values).toEqual([]);
    expect(codes(subscription.errors)).toEqual(['NOT_FOUND']);
  });

  it("should refuse FORBIDDEN on a raw socket for another user's taskCompleted and keep the socket open", async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${alice}` });
    raw.send({ id: 'x', type: 'subscribe', payload: { query: TASK_COMPLETED, variables: { u: 'bob' } } });
    const answer = await raw.next((m) => m['id'] === 'x' && m['type'] === 'next', 'the refusal');
    expect(codes(messageErrors(answer))).toEqual(['FORBIDDEN']);
    raw.send({ id: 'y', type: 'subscribe', payload: { query: VIEWER } });
    const viewer = await raw.next((m) => m['id'] === 'y' && m['type'] === 'next', 'the viewer');
    expect(viewer['payload']).toEqual({ data: { viewer: { userId: 'alice', roles: [] } } });
    raw.socket.close();
  });

  it.each([
    ['reportTaskProgress', REPORT, { p: 0.5 }],
    ['completeTask', COMPLETE, { r: { ok: true } }],
    ['failTask', FAIL, { m: 'nope' }],
  ])('should refuse %s from a user, even the owner, with FORBIDDEN', async (_field, query, variables) => {
    for (const token of [alice, bob]) {
      const response = await server.gql(query, { id: bobsExternal.id, ...variables }, token);
      expect(codes(response.errors)).toEqual(['FORBIDDEN']);
    }
    const after = await server.gql<{ task: TaskData }>(GET_TASK, { id: bobsExternal.id }, bob);
    expect(after.data?.task).toMatchObject({ status: 'QUEUED', progress: 0 });
  });

  describe('a service token', () => {
    it("should read any user's task", async () => {
      const response = await server.gql<{ task: TaskData }>(GET_TASK, { id: bobsDone.id }, service);
      expect(response.errors).toBeUndefined();
      expect(response.data?.task).toMatchObject({ id: bobsDone.id, userId: 'bob' });
    });

    it("should list any user's tasks", async () => {
      const response = await server.gql<{ tasks: { nodes: TaskData[] } }>(
        LIST_TASKS,
        { userId: 'bob' },
        service,
      );
      expect(response.errors).toBeUndefined();
      const nodes = response.data?.tasks.nodes ?? [];
      expect(nodes.map((task) => task.userId)).toEqual(nodes.map(() => 'bob'));
      expect(nodes.map((task) => task.id)).toEqual(expect.arrayContaining([bobsDone.id, bobsExternal.id]));
    });

    it('should start a task on behalf of a user, owned by that user', async () => {
      const task = await startTask(server, service, {
        kind: 'echo',
        input: { value: 'for bob' },
        userId: 'bob',
      });
      expect(task.userId).toBe('bob');
      const seenByBob = await waitForStatus(server, bob, task.id, 'SUCCEEDED');
      expect(seenByBob.result).toBe('for bob');
    });

    it("should cancel any user's task", async () => {
      const task = await startTask(server, bob, { kind: 'external', input: { job: 'cancel me' } });
      const response = await server.gql<{ cancelTask: TaskData }>(CANCEL, { id: task.id }, service);
      expect(response.errors).toBeUndefined();
      expect(response.data?.cancelTask).toMatchObject({ id: task.id, status: 'CANCELLED' });
    });

    it("should subscribe to taskUpdated of any user's task", async () => {
      const client = createWsClient(server.wsUrl, service);
      const updates = collect<{ taskUpdated: TaskData }>(client, TASK_UPDATED, { id: bobsDone.id });
      await updates.done;
      expect(updates.errors).toEqual([]);
      expect(updates.values.map((value) => value.taskUpdated.status)).toEqual(['SUCCEEDED']);
    });

    it("should subscribe to any user's taskCompleted and report progress, complete and fail external tasks", async () => {
      const bobsCursor = await server.gql<{ viewer: { lastEventCursor: string | null } }>(
        '{ viewer { lastEventCursor } }',
        {},
        bob,
      );
      const after = bobsCursor.data?.viewer.lastEventCursor ?? null;
      expect(after).not.toBeNull();
      const client = createWsClient(server.wsUrl, service);
      const completions = collect<{ taskCompleted: { replayed: boolean; task: TaskData } }>(
        client,
        TASK_COMPLETED,
        { u: 'bob', after },
      );

      const progress = await server.gql<{ reportTaskProgress: TaskData }>(
        REPORT,
        { id: bobsExternal.id, p: 0.5 },
        service,
      );
      expect(progress.errors).toBeUndefined();
      expect(progress.data?.reportTaskProgress).toMatchObject({ status: 'RUNNING', progress: 0.5 });

      const done = await server.gql<{ completeTask: TaskData }>(
        COMPLETE,
        { id: bobsExternal.id, r: { ok: true } },
        service,
      );
      expect(done.errors).toBeUndefined();
      expect(done.data?.completeTask).toMatchObject({ status: 'SUCCEEDED', result: { ok: true } });

      const toFail = await startTask(server, service, { kind: 'external', input: {}, userId: 'bob' });
      const failed = await server.gql<{ failTask: TaskData }>(FAIL, { id: toFail.id, m: 'broke' }, service);
      expect(failed.errors).toBeUndefined();
      expect(failed.data?.failTask).toMatchObject({
        status: 'FAILED',
        error: { code: 'BROKEN', message: 'broke' },
      });

      const events = await completions.until(2, "bob's two completions");
      expect(completions.errors).toEqual([]);
      expect(events.map((event) => [event.taskCompleted.task.id, event.taskCompleted.task.status])).toEqual(
        expect.arrayContaining([
          [bobsExternal.id, 'SUCCEEDED'],
          [toFail.id, 'FAILED'],
        ]),
      );
      expect(events.every((event) => event.taskCompleted.task.userId === 'bob')).toBe(true);
    });
  });

  it('should keep delivering to an open subscription while other users are refused', async () => {
    const carolCursor = await server.gql<{ viewer: { lastEventCursor: string | null } }>(
      '{ viewer { lastEventCursor } }',
      {},
      carol,
    );
    const client = createWsClient(server.wsUrl, carol);
    const completions = collect<{ taskCompleted: { task: TaskData } }>(client, TASK_COMPLETED, {
      u: 'carol',
      after: carolCursor.data?.viewer.lastEventCursor ?? null,
    });

    const refusals = await Promise.all([
      server.gql(GET_TASK, { id: bobsDone.id }, alice),
      server.gql(LIST_TASKS, { userId: 'carol' }, alice),
      server.gql(VIEWER, {}, 'forged'),
      (async () => {
        const raw = await openRawSocket(server.wsUrl);
        raw.send({ type: 'connection_init', payload: { authorization: 'Bearer junk' } });
        return raw.closed;
      })(),
      (async () => {
        const other = createWsClient(server.wsUrl, alice);
        const refused = collect(other, TASK_COMPLETED, { u: 'carol' });
        await refused.done;
        return refused.errors;
      })(),
    ]);
    expect(refusals).toHaveLength(5);

    const task = await startTask(server, carol, { kind: 'echo', input: { value: 'carol' } });
    const [event] = await completions.until(1, "carol's completion");
    expect(event?.taskCompleted.task).toMatchObject({ id: task.id, status: 'SUCCEEDED', result: 'carol' });
  });
});
