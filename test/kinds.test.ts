import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/tasks/kinds/kind.js';
import { sleepKind } from '../src/tasks/kinds/sleep.js';
import { waitFor } from './utils/deferred.js';
import { type GraphQLResponse, startTestServer, type TestServer } from './utils/tserver.js';

type Status = 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED';

interface TaskView {
  id: string;
  kind: string;
  status: Status;
  input: unknown;
  result: unknown;
  error: { code: string; message: string } | null;
  progress: number;
  attempts: number;
}

interface KindView {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  external: boolean;
  timeoutMs: number;
  attempts: number;
}

const TASK_FIELDS = 'id kind status input result error { code message } progress attempts';
const START_TASK = `mutation Start($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query Get($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const CANCEL_TASK = `mutation Cancel($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const TASK_KINDS = '{ taskKinds { name description inputSchema external timeoutMs attempts } }';

const FINAL: readonly Status[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

/** A kind a project adds: one definition, registered beside the built-ins. */
const reverseKind = defineKind({
  name: 'reverse',
  description: 'Reverses `text` character by character.',
  input: z.strictObject({ text: z.string().min(1).describe('What to reverse') }),
  timeoutMs: 1_000,
  attempts: 2,
  async handler({ text }, { reportProgress }) {
    reportProgress(0.5);
    return { reversed: [...text].reverse().join('') };
  },
});

function must<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`expected ${what}`);
  return value;
}

function firstError(response: GraphQLResponse<unknown>): Record<string, unknown> {
  return must(response.errors?.[0]?.extensions, 'an error with extensions');
}

async function taskKinds(server: TestServer, token: string): Promise<KindView[]> {
  const response = await server.gql<{ taskKinds: KindView[] }>(TASK_KINDS, {}, token);
  expect(response.errors).toBeUndefined();
  return must(response.data, 'taskKinds').taskKinds;
}

async function startTask(server: TestServer, token: string, input: Record<string, unknown>) {
  return server.gql<{ startTask: TaskView }>(START_TASK, { input }, token);
}

async function getTask(server: TestServer, token: string, id: string): Promise<TaskView> {
  const response = await server.gql<{ task: TaskView | null }>(GET_TASK, { id }, token);
  expect(response.errors).toBeUndefined();
  return must(response.data?.task, `task ${id}`);
}

async function waitForStatus(server: TestServer, token: string, id: string, statuses: readonly Status[]) {
  return waitFor(
    async () => {
      const task = await getTask(server, token, id);
      return statuses.includes(task.status) && task;
    },
    `task ${id} to be ${statuses.join(' or ')}`,
  );
}

/** Starts a task, waits for its final state and returns it. */
async function runTask(server: TestServer, token: string, kind: string, input: unknown): Promise<TaskView> {
  const started = await startTask(server, token, { kind, input });
  expect(started.errors).toBeUndefined();
  const task = must(started.data, 'startTask').startTask;
  return waitForStatus(server, token, task.id, FINAL);
}

/** What the checksum kind computes: the digest of `text`, hashed again `rounds - 1` times as bytes. */
function expectedDigest(text: string, algorithm: string, rounds: number): string {
  let digest = createHash(algorithm).update(text).digest();
  for (let round = 1; round < rounds; round++) digest = createHash(algorithm).update(digest).digest();
  return digest.toString('hex');
}

describe('task kinds', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({ env: { WORKER_CONCURRENCY: '1' } });
    token = await server.token('kind-user');
  });
  afterAll(() => server.stop());

  describe('taskKinds', () => {
    it('should list the built-in kinds with a description and the JSON Schema of their input', async () => {
      const kinds = await taskKinds(server, token);
      const byName = new Map(kinds.map((kind) => [kind.name, kind]));
      expect([...byName.keys()]).toEqual(expect.arrayContaining(['sleep', 'echo', 'checksum', 'external']));
      for (const kind of kinds) {
        expect(kind.description.length).toBeGreaterThan(0);
        expect(kind.inputSchema).toMatchObject({ type: 'object' });
        expect(kind.timeoutMs).toBeGreaterThan(0);
        expect(kind.attempts).toBeGreaterThanOrEqual(1);
      }

      expect(byName.get('sleep')).toMatchObject({
        external: false,
        inputSchema: {
          type: 'object',
          properties: { ms: { type: 'integer', minimum: 0 } },
          required: ['ms'],
          additionalProperties: false,
        },
      });
      expect(byName.get('echo')).toMatchObject({
        external: false,
        inputSchema: { type: 'object', properties: { value: expect.any(Object) }, required: ['value'] },
      });
      expect(byName.get('checksum')).toMatchObject({
        external: false,
        inputSchema: {
          type: 'object',
          properties: {
            text: { type: 'string' },
            algorithm: { type: 'string', enum: ['sha256', 'sha512', 'sha1', 'md5'], default: 'sha256' },
            rounds: { type: 'integer', minimum: 1, default: 1 },
          },
          required: ['text'],
        },
      });
      expect(byName.get('external')).toMatchObject({ external: true, inputSchema: { type: 'object' } });
    });

    it('should refuse to list kinds without a token', async () => {
      const response = await server.gql(TASK_KINDS, {}, null);
      expect(response.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
    });
  });

  describe('sleep', () => {
    it('should sleep at least the requested time and report how long it slept', async () => {
      const task = await runTask(server, token, 'sleep', { ms: 120 });
      expect(task).toMatchObject({ status: 'SUCCEEDED', progress: 1, attempts: 1 });
      const { sleptMs } = task.result as { sleptMs: number };
      expect(Number.isInteger(sleptMs)).toBe(true);
      expect(sleptMs).toBeGreaterThanOrEqual(120);
    });

    it('should stop sleeping when its task is cancelled', async () => {
      const started = await startTask(server, token, { kind: 'sleep', input: { ms: 600_000 } });
      const task = must(started.data, 'startTask').startTask;
      await waitForStatus(server, token, task.id, ['RUNNING']);
      const cancelled = await server.gql<{ cancelTask: TaskView }>(CANCEL_TASK, { id: task.id }, token);
      expect(cancelled.data?.cancelTask).toMatchObject({ status: 'CANCELLED', error: { code: 'CANCELLED' } });
      // The only worker is free again: the next task runs.
      expect(await runTask(server, token, 'echo', { value: 'next' })).toMatchObject({ status: 'SUCCEEDED' });
      expect(await getTask(server, token, task.id)).toMatchObject({ status: 'CANCELLED', result: null });
    });

    it('should stop with an AbortError carrying the reason as soon as its signal aborts', async () => {
      const handler = must(sleepKind.handler, 'the sleep handler');
      const abort = new AbortController();
      const progress: number[] = [];
      const sleeping = handler(
        { ms: 600_000 },
        {
          signal: abort.signal,
          reportProgress: (value) => progress.push(value),
          attempt: 1,
          taskId: 'direct',
          userId: 'direct',
        },
      );
      abort.abort('cancelled');
      await expect(sleeping).rejects.toMatchObject({ name: 'AbortError', cause: 'cancelled' });
      expect(progress).toEqual([]);
    });

    it('should refuse an input without ms with BAD_USER_INPUT naming input.ms', async () => {
      const response = await startTask(server, token, { kind: 'sleep', input: {} });
      expect(firstError(response)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.ms' });
      const negative = await startTask(server, token, { kind: 'sleep', input: { ms: -1 } });
      expect(firstError(negative)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.ms' });
    });
  });

  describe('echo', () => {
    const values: [string, unknown][] = [
      ['an object', { nested: { list: [1, 'two', { three: 3 }], flag: true }, empty: {} }],
      ['an array', [1, [2, [3]], { four: 4 }, null, 'five']],
      ['a string', 'hello, world — ünïcödé ✓'],
      ['null', null],
      ['a number', 12.5],
      ['a boolean', false],
    ];
    for (const [what, value] of values) {
      it(`should return ${what} unchanged`, async () => {
        const task = await runTask(server, token, 'echo', { value });
        expect(task.status).toBe('SUCCEEDED');
        expect(task.result).toEqual(value);
      });
    }
  });

  describe('checksum', () => {
    it('should return the sha256 hex digest of the text by default', async () => {
      const task = await runTask(server, token, 'checksum', { text: 'hello' });
      expect(task).toMatchObject({
        status: 'SUCCEEDED',
        input: { text: 'hello', algorithm: 'sha256', rounds: 1 },
      });
      expect(task.result).toEqual({ digest: createHash('sha256').update('hello').digest('hex') });
    });

    it('should hash the binary digest again for every further round', async () => {
      const three = await runTask(server, token, 'checksum', { text: 'chain me', rounds: 3 });
      expect(three.result).toEqual({ digest: expectedDigest('chain me', 'sha256', 3) });
      expect(three.result).not.toEqual({ digest: expectedDigest('chain me', 'sha256', 1) });

      // More rounds than one slice of work between two turns of the event loop.
      const many = await runTask(server, token, 'checksum', { text: 'chain me', rounds: 4_501 });
      expect(many).toMatchObject({ status: 'SUCCEEDED', progress: 1 });
      expect(many.result).toEqual({ digest: expectedDigest('chain me', 'sha256', 4_501) });
    });

    for (const algorithm of ['sha512', 'sha1', 'md5']) {
      it(`should compute ${algorithm} digests`, async () => {
        const task = await runTask(server, token, 'checksum', { text: 'abc', algorithm, rounds: 2 });
        expect(task.result).toEqual({ digest: expectedDigest('abc', algorithm, 2) });
      });
    }

    it('should hash an empty text', async () => {
      const task = await runTask(server, token, 'checksum', { text: '' });
      expect(task.result).toEqual({ digest: expectedDigest('', 'sha256', 1) });
    });

    it('should refuse an unknown algorithm with BAD_USER_INPUT naming input.algorithm', async () => {
      const response = await startTask(server, token, {
        kind: 'checksum',
        input: { text: 'x', algorithm: 'crc32' },
      });
      expect(response.data ?? null).toBeNull();
      expect(firstError(response)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.algorithm' });
    });

    it('should refuse a missing text or fewer than one round with BAD_USER_INPUT naming the field', async () => {
      const noText = await startTask(server, token, { kind: 'checksum', input: { rounds: 2 } });
      expect(firstError(noText)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.text' });
      const noRounds = await startTask(server, token, { kind: 'checksum', input: { text: 'x', rounds: 0 } });
      expect(firstError(noRounds)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.rounds' });
    });

    it('should refuse an unknown kind with BAD_USER_INPUT naming kind', async () => {
      const response = await startTask(server, token, { kind: 'no-such-kind', input: {} });
      expect(firstError(response)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'kind' });
    });
  });
});

describe('a kind added by the project', () => {
  it('should be offered by taskKinds and run once it is registered', async () => {
    const server = await startTestServer({ kinds: [reverseKind] });
    const token = await server.token('custom-kind-user');

    const kinds = await taskKinds(server, token);
    expect(kinds.find((kind) => kind.name === 'reverse')).toEqual({
      name: 'reverse',
      description: 'Reverses `text` character by character.',
      external: false,
      timeoutMs: 1_000,
      attempts: 2,
      inputSchema: expect.objectContaining({
        type: 'object',
        properties: { text: { type: 'string', minLength: 1, description: 'What to reverse' } },
        required: ['text'],
      }),
    });

    const task = await runTask(server, token, 'reverse', { text: 'stressed' });
    expect(task).toMatchObject({ kind: 'reverse', status: 'SUCCEEDED', result: { reversed: 'desserts' } });

    const invalid = await startTask(server, token, { kind: 'reverse', input: { text: '' } });
    expect(firstError(invalid)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.text' });
  });

  it('should not be offered by a server that did not register it', async () => {
    const server = await startTestServer();
    const token = await server.token('custom-kind-user');
    const names = (await taskKinds(server, token)).map((kind) => kind.name);
    expect(names).not.toContain('reverse');
    const response = await startTask(server, token, { kind: 'reverse', input: { text: 'abc' } });
    expect(firstError(response)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'kind' });
  });
});
