import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type StartTaskError,
  type StartTaskInput,
  type StartTaskResult,
  type Task,
  TaskClientError,
} from '../../src/client/index.js';
import { freshUser } from '../utils/in-process-app.js';
import { recordCompletions, createTestTaskClient as taskClient } from '../utils/task-clients.js';
import { startTestServer, type TestServer } from '../utils/tserver.js';

/** The task of a result, failing the test on an error. */
function taskOf(result: StartTaskResult | undefined): Task {
  if (!result?.task) throw new Error(`expected a task, got ${JSON.stringify(result)}`);
  return result.task;
}

/** The error of a result, failing the test on a task. */
function errorOf(result: StartTaskResult | undefined): StartTaskError {
  if (!result?.error) throw new Error(`expected an error, got ${JSON.stringify(result)}`);
  return result.error;
}

describe('task client startTasks', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  async function clientFor(userId: string) {
    return taskClient({ url: server.url, token: await server.token(userId) });
  }

  it('should resolve with one result per input, in order: { task } or { error } without null fields', async () => {
    const userId = freshUser('sdk-bulk');
    const client = await clientFor(userId);
    const completions = recordCompletions(client);
    const inputs: readonly StartTaskInput[] = [
      { kind: 'echo', input: { value: 'a' }, idempotencyKey: 'sdk-bulk-a' },
      { kind: 'no-such-kind' },
      { kind: 'echo', input: { value: 'a' }, idempotencyKey: 'sdk-bulk-a' },
      { kind: 'echo', input: { value: 'b' }, idempotencyKey: 'sdk-bulk-a' },
      { kind: 'checksum', input: { text: 'c' }, userId: freshUser('someone-else') },
    ];
    const [first, unknownKind, repeat, conflict, forbidden, ...rest] = await client.startTasks(inputs);
    expect(rest).toEqual([]);

    const task = taskOf(first);
    expect(task).toMatchObject({ userId, kind: 'echo', input: { value: 'a' } });
    expect(first).toEqual({ task });
    expect(taskOf(repeat).id).toBe(task.id);
    expect(unknownKind).toEqual({
      error: { code: 'BAD_USER_INPUT', message: expect.any(String), field: 'kind' },
    });
    expect(errorOf(conflict)).toEqual({ code: 'CONFLICT', message: expect.any(String), taskId: task.id });
    expect(errorOf(forbidden)).toEqual({ code: 'FORBIDDEN', message: expect.any(String) });

    const final = await client.waitForTask(task.id);
    expect(final).toMatchObject({ id: task.id, status: 'SUCCEEDED', result: 'a' });
    await completions.until([task.id]);
  });

  it('should resolve with an empty list for no inputs', async () => {
    const client = await clientFor(freshUser('sdk-bulk-empty'));
    expect(await client.startTasks([])).toEqual([]);
  });

  it('should reject a call over 1,000 inputs with TaskClientError BAD_USER_INPUT, starting none', async () => {
    const client = await clientFor(freshUser('sdk-bulk-many'));
    const inputs = Array.from({ length: 1_001 }, (_, value) => ({ kind: 'echo', input: { value } }));
    const refused = await client.startTasks(inputs).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(TaskClientError);
    expect((refused as TaskClientError).code).toBe('BAD_USER_INPUT');
    expect((await client.tasks()).nodes).toEqual([]);
  });
});
