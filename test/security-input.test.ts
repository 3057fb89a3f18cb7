import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../scripts/lib/local.js';
import { SqliteRepository } from '../src/backends/embedded/sqlite-repository.js';
import { CursorExpiredError } from '../src/tasks/errors.js';
import { newTask, type Task, TaskStatus } from '../src/tasks/task.js';
import { userIdProblem } from '../src/tasks/user-id.js';
import {
  createInProcessApp,
  freshUser,
  IN_PROCESS_URL,
  type InProcessApp,
  onlyError,
} from './utils/in-process-app.js';
import { TEST_BACKEND } from './utils/redis.js';

/*
 * The security issue's repros for the rate limit (3), user ids in keys (5) and leaks (6), each
 * through the whole GraphQL pipeline in-process (`App.fetch`), on either backend.
 */

interface TaskData {
  id: string;
  userId: string;
  kind: string;
  status: string;
}
interface ErrorData {
  message: string;
  extensions?: Record<string, unknown>;
}

const TASK_FIELDS = 'id userId kind status';
const VIEWER = '{ viewer { userId lastEventCursor } }';
const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const LIST = `query($userId: ID) { tasks(userId: $userId, first: 100) { nodes { ${TASK_FIELDS} } } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const TASK_UPDATED = `subscription($id: ID!) { taskUpdated(id: $id) { ${TASK_FIELDS} } }`;
const TASK_COMPLETED = `subscription($userId: ID!, $after: String) {
  taskCompleted(userId: $userId, after: $after) { cursor replayed task { id status } }
}`;

let service: InProcessApp;
let serviceToken: string;

beforeAll(async () => {
  service = await createInProcessApp();
  serviceToken = await service.token(freshUser('system'), { service: true });
});
afterAll(async () => {
  await service?.stop();
});

async function startAs(app: InProcessApp, token: string, input: Record<string, unknown>): Promise<TaskData> {
  const response = await app.gql<{ startTask: TaskData }>(START, { input }, token);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  const task = response.data?.startTask;
  if (!task) throw new Error('startTask returned no task');
  return task;
}

async function listOf(userId: string): Promise<TaskData[]> {
  const response = await service.gql<{ tasks: { nodes: TaskData[] } }>(LIST, { userId }, serviceToken);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data?.tasks.nodes ?? [];
}

async function lastEventCursor(token: string): Promise<string> {
  const response = await service.gql<{ viewer: { lastEventCursor: string } }>(VIEWER, {}, token);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data?.viewer.lastEventCursor ?? '';
}

describe('3. the startTask rate limit is taken after validation', () => {
  let limited: InProcessApp;

  beforeAll(async () => {
    limited = await createInProcessApp({ env: { RATE_LIMIT_START_PER_MINUTE: '2' } });
  });
  afterAll(async () => {
    await limited?.stop();
  });

  it('should take no token for calls refused by validation: two starts still pass after five refusals', async () => {
    const token = await limited.token(freshUser('clumsy'));
    const refused = [
      { kind: 'no-such-kind', input: {} },
      { kind: 'no-such-kind', input: {} },
      { kind: 'sleep', input: { ms: 'soon' } },
      { kind: 'echo', input: { value: 1 }, idempotencyKey: '' },
      { kind: 'echo', input: { value: 1 }, userId: freshUser('someone-else') },
    ];
    for (const input of refused) {
      const response = await limited.gql(START, { input }, token);
      expect(onlyError(response).extensions['code']).not.toBe('RATE_LIMITED');
    }
    for (const value of [1, 2]) await startAs(limited, token, { kind: 'echo', input: { value } });
    const third = await limited.gql(START, { input: { kind: 'echo', input: { value: 3 } } }, token);
    expect(onlyError(third).extensions['code']).toBe('RATE_LIMITED');
  });

  it('should answer an idempotent repeat with its task even when the bucket is empty', async () => {
    const token = await limited.token(freshUser('retrying'));
    const keyed = { kind: 'echo', input: { value: 'order' }, idempotencyKey: 'order-7' };
    const first = await startAs(limited, token, keyed);
    await startAs(limited, token, { kind: 'echo', input: { value: 'other' } });
    const refused = await limited.gql(START, { input: { kind: 'echo', input: { value: 'x' } } }, token);
    expect(onlyError(refused).extensions['code']).toBe('RATE_LIMITED');

    const repeat = await limited.gql<{ startTask: TaskData }>(START, { input: keyed }, token);
    expect(repeat.errors, JSON.stringify(repeat.errors)).toBeUndefined();
    expect(repeat.data?.startTask.id).toBe(first.id);
  });

  it('should take no token for an idempotent repeat', async () => {
    const token = await limited.token(freshUser('repeating'));
    const keyed = { kind: 'echo', input: { value: 'once' }, idempotencyKey: 'once' };
    const first = await startAs(limited, token, keyed);
    for (const _ of [1, 2, 3]) expect((await startAs(limited, token, keyed)).id).toBe(first.id);
    const second = await startAs(limited, token, { kind: 'echo', input: { value: 'two' } });
    expect(second.id).not.toBe(first.id);
  });
});

describe('5. user ids and idempotency keys in storage keys', () => {
  it('should keep a user whose id imitates a key apart: vic starts with key "k}:events" after "vic}:idem:k" had a task', async () => {
    // The issue's `vic}:idem:k`, with a fresh `vic`: its event stream's key was vic's key of `k}:events`.
    const vic = freshUser('vic');
    const planted = await startAs(service, serviceToken, {
      kind: 'external',
      userId: `${vic}}:idem:k`,
      input: { by: 'service' },
    });
    const vicToken = await service.token(vic);
    for (const attempt of [1, 2]) {
      const response = await service.gql<{ startTask: TaskData }>(
        START,
        { input: { kind: 'external', input: { mine: true }, idempotencyKey: 'k}:events' } },
        vicToken,
      );
      expect(response.errors, `attempt ${attempt}: ${JSON.stringify(response.errors)}`).toBeUndefined();
      expect(response.data?.startTask.userId).toBe(vic);
    }
    const vics = await listOf(vic);
    expect(vics).toHaveLength(1);
    expect(vics[0]?.userId).toBe(vic);
    expect((await listOf(`${vic}}:idem:k`)).map((task) => task.id)).toEqual([planted.id]);
    expect(await lastEventCursor(vicToken)).toEqual(expect.any(String));
  });

  it('should keep users apart whose ids differ only in an escaped character ("}" and "%7D")', async () => {
    const base = freshUser('esc');
    const braced = await startAs(service, serviceToken, { kind: 'external', userId: `${base}}`, input: {} });
    const percent = await startAs(service, serviceToken, {
      kind: 'external',
      userId: `${base}%7D`,
      input: {},
    });
    expect((await listOf(`${base}}`)).map((task) => task.id)).toEqual([braced.id]);
    expect((await listOf(`${base}%7D`)).map((task) => task.id)).toEqual([percent.id]);
  });

  it.each([
    ['empty', ''],
    ['longer than 200 characters', 'u'.repeat(201)],
    ['holding a space', 'alice smith'],
    ['holding a newline', 'alice\nbob'],
    ['holding a NUL', 'alice\u0000'],
    ['holding a bidi override', 'alice\u202egnp'],
  ])('should refuse a userId %s with BAD_USER_INPUT on field userId', async (_what, userId) => {
    const started = await service.gql(
      START,
      { input: { kind: 'external', userId, input: {} } },
      serviceToken,
    );
    expect(onlyError(started).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'userId' });
    const listed = await service.gql(LIST, { userId }, serviceToken);
    expect(onlyError(listed).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'userId' });
    const followed = await service.firstEvent(TASK_COMPLETED, { userId }, serviceToken);
    expect(onlyError(followed).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'userId' });
    const revoked = await service.gql(
      'mutation($userId: ID!) { revokeUserConnections(userId: $userId) }',
      { userId },
      serviceToken,
    );
    expect(onlyError(revoked).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'userId' });
    if (userId !== '') {
      // A token naming such a user is refused outright: the rule is the same one.
      const token = await service.token(userId);
      const viewer = await service.gql(VIEWER, {}, token);
      expect(onlyError(viewer).extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
    }
  });

  it.each([
    'auth0|5f7c8ec7c33c6c004bbafe82',
    'google-oauth2|104377226452346253446',
    'a.b+tag@example.com',
    '3f2b1c9e-8a47-4d2e-9b61-0c7d5e4f3a21',
    'spiffe://example.org/ns/prod/sa/billing',
    '00u1abcd2EFGH3ijk4x7',
    'ユーザー42',
    'u'.repeat(200),
  ])('should accept the user id %s', async (userId) => {
    expect(userIdProblem(userId)).toBeNull();
    const task = await startAs(service, serviceToken, { kind: 'external', userId, input: {} });
    expect(task.userId).toBe(userId);
  });
});

describe("6. nothing of other users' tasks leaks", () => {
  let alice: string;
  let bobId: string;
  let bobsTask: TaskData;

  beforeAll(async () => {
    alice = await service.token(freshUser('alice'));
    bobId = freshUser('bob');
    bobsTask = await startAs(service, await service.token(bobId), { kind: 'external', input: { n: 1 } });
  });

  /** An error as a prober sees it, with the id it asked about blanked out. */
  const shapeOf = (error: Required<ErrorData>, id: string) => ({
    message: error.message.replaceAll(id, '<id>'),
    extensions: { ...error.extensions, id: error.extensions['id'] === id ? '<id>' : error.extensions['id'] },
  });

  it("should answer task with null for another user's task, as for an id that does not exist", async () => {
    const theirs = await service.gql<{ task: TaskData | null }>(GET_TASK, { id: bobsTask.id }, alice);
    const none = await service.gql<{ task: TaskData | null }>(GET_TASK, { id: randomUUID() }, alice);
    expect(theirs.errors).toBeUndefined();
    expect(theirs.data).toEqual({ task: null });
    expect(theirs.data).toEqual(none.data);
  });

  it("should refuse cancelTask on another user's task with NOT_FOUND, as for an id that does not exist", async () => {
    const missing = randomUUID();
    const theirs = onlyError(await service.gql(CANCEL, { id: bobsTask.id }, alice));
    const none = onlyError(await service.gql(CANCEL, { id: missing }, alice));
    expect(theirs.extensions['code']).toBe('NOT_FOUND');
    expect(shapeOf(theirs, bobsTask.id)).toEqual(shapeOf(none, missing));
    expect(JSON.stringify(theirs)).not.toContain(bobId);
    const after = await service.gql<{ task: TaskData }>(GET_TASK, { id: bobsTask.id }, serviceToken);
    expect(after.data?.task.status).toBe('QUEUED');
  });

  it("should refuse taskUpdated on another user's task with NOT_FOUND, as for an id that does not exist", async () => {
    const missing = randomUUID();
    const theirs = onlyError(await service.firstEvent(TASK_UPDATED, { id: bobsTask.id }, alice));
    const none = onlyError(await service.firstEvent(TASK_UPDATED, { id: missing }, alice));
    expect(theirs.extensions['code']).toBe('NOT_FOUND');
    expect(shapeOf(theirs, bobsTask.id)).toEqual(shapeOf(none, missing));
  });

  it('should refuse tasks(userId) of another user with FORBIDDEN naming no user', async () => {
    const aliceId = freshUser('alice-named');
    const error = onlyError(await service.gql(LIST, { userId: bobId }, await service.token(aliceId)));
    expect(error.extensions['code']).toBe('FORBIDDEN');
    expect(error.message).not.toContain(bobId);
    expect(error.message).not.toContain(aliceId);
  });

  describe('tasks page cursors', () => {
    const PAGE = `query($userId: ID, $first: Int, $after: String) {
      tasks(userId: $userId, first: $first, after: $after) {
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
      }
    }`;
    interface PageData {
      tasks: { edges: { cursor: string; node: { id: string } }[]; pageInfo: { endCursor: string | null } };
    }

    it('should refuse a page cursor a user made from a global sequence number', async () => {
      const token = await service.token(freshUser('prober'));
      for (const n of [1, 2]) await startAs(service, token, { kind: 'external', input: { n } });
      const crafted = Buffer.from('t:999999').toString('base64url');
      const response = await service.gql(PAGE, { first: 10, after: crafted }, token);
      expect(onlyError(response).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    });

    it("should refuse another user's page cursor with BAD_USER_INPUT", async () => {
      const owner = await service.token(freshUser('pager'));
      for (const n of [1, 2]) await startAs(service, owner, { kind: 'external', input: { n } });
      const page = await service.gql<PageData>(PAGE, { first: 1 }, owner);
      const endCursor = page.data?.tasks.pageInfo.endCursor;
      expect(endCursor).toEqual(expect.any(String));
      const stranger = await service.token(freshUser('stranger'));
      await startAs(service, stranger, { kind: 'external', input: {} });
      const response = await service.gql(PAGE, { first: 10, after: endCursor }, stranger);
      expect(onlyError(response).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
    });

    it("should page a service caller through every user's tasks with the same cursors", async () => {
      const [one, two] = [freshUser('svc-page-a'), freshUser('svc-page-b')];
      const first = await startAs(service, serviceToken, { kind: 'external', userId: one, input: {} });
      const second = await startAs(service, serviceToken, { kind: 'external', userId: two, input: {} });
      const newest = await service.gql<PageData>(PAGE, { first: 1 }, serviceToken);
      expect(newest.data?.tasks.edges.map((edge) => edge.node.id)).toEqual([second.id]);
      const next = await service.gql<PageData>(
        PAGE,
        { first: 1, after: newest.data?.tasks.pageInfo.endCursor },
        serviceToken,
      );
      expect(next.errors).toBeUndefined();
      expect(next.data?.tasks.edges.map((edge) => edge.node.id)).toEqual([first.id]);
    });
  });

  it.skipIf(TEST_BACKEND === 'redis')(
    "should give a user the same cursors whatever other users do (embedded: numbered per user's log)",
    async () => {
      const busyId = freshUser('busy');
      const quietId = freshUser('quiet');
      const busy = await service.token(busyId);
      const quiet = await service.token(quietId);
      const other = await service.token(freshUser('other'));

      await startAs(service, busy, { kind: 'external', input: {} });
      await startAs(service, quiet, { kind: 'external', input: {} });
      const [busyFirst, quietFirst] = [await lastEventCursor(busy), await lastEventCursor(quiet)];
      for (const n of [1, 2, 3]) await startAs(service, other, { kind: 'external', input: { n } });
      await startAs(service, busy, { kind: 'external', input: {} });
      await startAs(service, quiet, { kind: 'external', input: {} });

      expect(busyFirst).toBe(quietFirst);
      expect(await lastEventCursor(busy)).toBe(await lastEventCursor(quiet));
    },
  );

  it.each([
    ['a truncated JSON body', '{"query": garbage-secret-123'],
    ['a JSON body with an unknown parameter', '{"query": "{ viewer { userId } }", "garbage-secret-123": 1}'],
  ])('should answer %s with 400 BAD_REQUEST without echoing the body', async (_what, body) => {
    const response = await service.app.fetch(IN_PROCESS_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body,
    });
    const text = await response.text();
    expect(response.status).toBe(400);
    expect(onlyError(JSON.parse(text) as { errors?: ErrorData[] }).extensions['code']).toBe('BAD_REQUEST');
    expect(text).not.toContain('garbage-secret-123');
  });

  it('should answer GET variables that are not JSON with 400 BAD_REQUEST without echoing them', async () => {
    const query = new URLSearchParams({ query: '{ viewer { userId } }', variables: '{garbage-secret-123' });
    const response = await service.app.fetch(`${IN_PROCESS_URL}?${query}`, {
      headers: { accept: 'application/graphql-response+json' },
    });
    const text = await response.text();
    expect(response.status).toBe(400);
    expect(onlyError(JSON.parse(text) as { errors?: ErrorData[] }).extensions['code']).toBe('BAD_REQUEST');
    expect(text).not.toContain('garbage-secret-123');
  });
});

/** The embedded schema before event cursors were numbered per user. */
const LEGACY_SCHEMA = `
CREATE TABLE tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
  status TEXT NOT NULL, external INTEGER NOT NULL, run_at INTEGER NOT NULL, idempotency_key TEXT,
  data TEXT NOT NULL
);
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, final INTEGER NOT NULL,
  data TEXT NOT NULL, appended_at INTEGER
);
CREATE INDEX events_by_user ON events (user_id, seq);
CREATE TABLE trimmed_logs (user_id TEXT PRIMARY KEY, trimmed_through INTEGER NOT NULL);
`;

describe.skipIf(TEST_BACKEND === 'redis')('6. cursors issued before the upgrade (embedded)', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A data dir as the earlier version left it: events 1..5 alternate alice, bob; carol's log trimmed. */
  function legacyDataDir(): { dataDir: string; alice: Task[] } {
    const dataDir = makeTempDir('tss-legacy-');
    dirs.push(dataDir);
    const db = new Database(path.join(dataDir, 'tasks.sqlite'));
    db.exec(LEGACY_SCHEMA);
    const insert = db.prepare('INSERT INTO events (user_id, final, data, appended_at) VALUES (?, 1, ?, ?)');
    const alice: Task[] = [];
    for (const [userId, n] of [
      ['alice', 1],
      ['bob', 2],
      ['alice', 3],
      ['bob', 4],
      ['alice', 5],
      ['carol', 6],
    ] as const) {
      const task: Task = {
        ...newTask({ userId, kind: 'echo', input: { n }, external: false }),
        status: TaskStatus.Succeeded,
        result: { n },
        finishedAt: Date.now(),
      };
      if (userId === 'alice') alice.push(task);
      insert.run(userId, JSON.stringify(task), Date.now());
    }
    db.prepare('INSERT INTO trimmed_logs (user_id, trimmed_through) VALUES (?, ?)').run('carol', 2);
    db.close();
    return { dataDir, alice };
  }

  function open(dataDir: string): SqliteRepository {
    return new SqliteRepository({ dataDir, eventRetention: 1_000, publish: () => {} });
  }

  it("should replay exactly the user's events after a cursor the earlier version issued", async () => {
    const { dataDir, alice } = legacyDataDir();
    const repository = open(dataDir);
    try {
      const replay = await repository.readEvents('alice', '1', { finalOnly: true, limit: 10 });
      expect(replay.map((event) => event.task.id)).toEqual([alice[1]?.id, alice[2]?.id]);
      const fromStart = await repository.readEvents('alice', '0', { finalOnly: true, limit: 10 });
      expect(fromStart.map((event) => event.task.id)).toEqual(alice.map((task) => task.id));
      // Events carry cursors of the new form, ordered after the legacy cursor they follow.
      const [second, third] = replay;
      if (!second || !third) throw new Error('no replay');
      expect(second.cursor).not.toMatch(/^\d+$/);
      expect(repository.compareCursors(second.cursor, '1')).toBeGreaterThan(0);
      expect(repository.compareCursors(third.cursor, second.cursor)).toBeGreaterThan(0);
      const after = await repository.readEvents('alice', second.cursor, { finalOnly: true, limit: 10 });
      expect(after.map((event) => event.task.id)).toEqual([alice[2]?.id]);
    } finally {
      repository.close();
    }
  });

  it.each([
    ["another user's event", '2'],
    ['a number past every event', '999'],
  ])(
    'should answer a legacy cursor that is %s with CURSOR_EXPIRED, never a replay',
    async (_what, cursor) => {
      const repository = open(legacyDataDir().dataDir);
      try {
        await expect(repository.readEvents('alice', cursor, { finalOnly: true, limit: 10 })).rejects.toThrow(
          CursorExpiredError,
        );
      } finally {
        repository.close();
      }
    },
  );

  it('should answer a legacy cursor older than a trimmed log, and the empty-log cursor of the new form, with CURSOR_EXPIRED', async () => {
    const repository = open(legacyDataDir().dataDir);
    try {
      for (const cursor of ['0', await repository.lastCursor('nobody')]) {
        await expect(repository.readEvents('carol', cursor, { finalOnly: true, limit: 10 })).rejects.toThrow(
          CursorExpiredError,
        );
      }
      const replay = await repository.readEvents('carol', '2', { finalOnly: true, limit: 10 });
      expect(replay).toHaveLength(1);
    } finally {
      repository.close();
    }
  });

  it('should number new events after the migrated ones and resume a legacy cursor through the service', async () => {
    const { dataDir, alice } = legacyDataDir();
    const upgraded = await createInProcessApp({ env: { DATA_DIR: dataDir } });
    try {
      const token = await upgraded.token('alice');
      const before = await upgraded.gql<{ viewer: { lastEventCursor: string } }>(VIEWER, {}, token);
      const replay = await upgraded.firstEvent<{
        taskCompleted: { cursor: string; replayed: boolean; task: { id: string } };
      }>(TASK_COMPLETED, { userId: 'alice', after: '3' }, token);
      expect(replay.errors).toBeUndefined();
      expect(replay.data?.taskCompleted).toMatchObject({ replayed: true, task: { id: alice[2]?.id } });
      expect(replay.data?.taskCompleted.cursor).toBe(before.data?.viewer.lastEventCursor);

      const probe = await upgraded.firstEvent(TASK_COMPLETED, { userId: 'alice', after: '4' }, token);
      expect(onlyError(probe).extensions['code']).toBe('CURSOR_EXPIRED');

      await startAs(upgraded, token, { kind: 'external', input: {} });
      const after = await upgraded.gql<{ viewer: { lastEventCursor: string } }>(VIEWER, {}, token);
      expect(after.data?.viewer.lastEventCursor).not.toBe(before.data?.viewer.lastEventCursor);
    } finally {
      await upgraded.stop();
    }
  });
});
