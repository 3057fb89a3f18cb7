import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { loadConfig } from '../src/config.js';
import { configErrorOf } from './utils/config-error.js';
import {
  type GraphQLResponse,
  makeTempDir,
  startTaskWith,
  startTestServer,
  type TestServer,
  waitForTaskStatus,
} from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

interface TaskData {
  id: string;
  userId: string;
  kind: string;
  status: string;
  result: unknown;
}
type Message = Record<string, unknown>;
interface RawResponse {
  readonly status: number;
  readonly contentType: string | null;
  readonly body: GraphQLResponse<unknown> | null;
}

const TASK_FIELDS = 'id userId kind status result';
const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { ${TASK_FIELDS} } }`;
const GET_TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const LIST_TASKS = `query($first: Int, $after: String) {
  tasks(first: $first, after: $after) { nodes { ${TASK_FIELDS} } pageInfo { hasNextPage endCursor } }
}`;
const TASK_COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;
const LAST_CURSOR = '{ viewer { lastEventCursor } }';

/** `extensions` of the first error of a response or message, or {}. */
function firstExtensions(errors: readonly unknown[] | undefined): Record<string, unknown> {
  const [first] = errors ?? [];
  if (typeof first !== 'object' || first === null) return {};
  const extensions = (first as { extensions?: unknown }).extensions;
  return typeof extensions === 'object' && extensions !== null ? (extensions as Record<string, unknown>) : {};
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

/** POSTs an arbitrary body; parses the answer as JSON when it is some. */
async function postRaw(
  server: TestServer,
  body: string,
  token: string | null,
  contentType = 'application/json',
): Promise<RawResponse> {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': contentType,
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
  });
  const text = await response.text();
  let parsed: GraphQLResponse<unknown> | null = null;
  try {
    parsed = JSON.parse(text) as GraphQLResponse<unknown>;
  } catch {
    parsed = null;
  }
  return { status: response.status, contentType: response.headers.get('content-type'), body: parsed };
}

/**
 * Upgrades to WebSocket by hand, offering `protocol`, and reads the server's first frame, which
 * must be a close frame. (The `ws` client refuses a handshake that selects no subprotocol before
 * the server can say why; browsers accept it and then see the close code.)
 */
function upgradeAndReadClose(
  wsUrl: string,
  protocol: string,
): Promise<{ status: number | undefined; selected: string | undefined; code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request(wsUrl.replace(/^ws/, 'http'), {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'),
        'sec-websocket-protocol': protocol,
      },
    });
    request.on('upgrade', (response, socket, head) => {
      let buffer = Buffer.from(head);
      const tryParse = () => {
        if (buffer.length < 2) return;
        const opcode = buffer.readUInt8(0) & 0x0f;
        const length = buffer.readUInt8(1) & 0x7f; // a close frame's payload is at most 125 bytes
        if (buffer.length < 2 + length) return;
        socket.destroy();
        if (opcode !== 0x8) return reject(new Error(`expected a close frame, got opcode ${opcode}`));
        resolve({
          status: response.statusCode,
          selected: response.headers['sec-websocket-protocol'],
          code: buffer.readUInt16BE(2),
          reason: buffer.subarray(4, 2 + length).toString(),
        });
      };
      socket.on('data', (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        tryParse();
      });
      tryParse();
    });
    request.on('response', (response) => reject(new Error(`no upgrade: HTTP ${response.statusCode}`)));
    request.on('error', reject);
    request.end();
  });
}

const startTask = (server: TestServer, token: string, input: Record<string, unknown>) =>
  startTaskWith<TaskData>(server, token, START, input);

const waitForStatus = (server: TestServer, token: string, id: string, status: string) =>
  waitForTaskStatus<TaskData>(server, token, GET_TASK, id, status);

async function listAll(server: TestServer, token: string): Promise<TaskData[]> {
  const response = await server.gql<{ tasks: { nodes: TaskData[] } }>(LIST_TASKS, { first: 100 }, token);
  expect(response.errors).toBeUndefined();
  return response.data?.tasks.nodes ?? [];
}

describe('bad HTTP requests', () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startTestServer();
    token = await server.token('alice');
  });
  afterAll(() => server.stop());

  it.each([
    ['a truncated JSON body', '{"query": '],
    ['an empty body', ''],
    ['a body that is not JSON at all', 'query { viewer { userId } }'],
  ])('should answer %s with 400 and a BAD_REQUEST error about the JSON', async (_what, body) => {
    const response = await postRaw(server, body, token);
    expect(response.status).toBe(400);
    expect(firstExtensions(response.body?.errors)['code']).toBe('BAD_REQUEST');
    expect(response.body?.errors?.[0]?.message).toMatch(/invalid JSON/);
  });

  it.each([
    ['a JSON object without a query', '{}', /Must provide query string/],
    ['a query that is not a string', '{"query": 1}', /"query" param to be a string/],
    [
      'variables that are not an object',
      '{"query": "{ viewer { userId } }", "variables": "x"}',
      /"variables"/,
    ],
    [
      'an unknown top-level parameter (not named back)',
      '{"query": "{ viewer { userId } }", "foo": 1}',
      /^Malformed GraphQL request: send a JSON object with "query"/,
    ],
    ['JSON null', 'null', /expected to be object/],
    ['a JSON string', '"hello"', /expected to be object/],
    ['a batch (JSON array)', '[{"query": "{ viewer { userId } }"}]', /Batching is not supported/],
  ])('should answer %s with 400 and a BAD_REQUEST error', async (_what, body, message) => {
    const response = await postRaw(server, body, token);
    expect(response.status).toBe(400);
    expect(firstExtensions(response.body?.errors)['code']).toBe('BAD_REQUEST');
    expect(response.body?.errors?.[0]?.message).toMatch(message);
  });

  it('should answer a text/plain body with 415 Unsupported Media Type', async () => {
    const response = await postRaw(server, 'hello', token, 'text/plain');
    expect(response.status).toBe(415);
  });

  it('should answer a GraphQL syntax error with 400 and GRAPHQL_PARSE_FAILED at its location', async () => {
    const response = await server.gql('{ viewer { ', {}, token);
    expect(response.status).toBe(400);
    expect(firstExtensions(response.errors)['code']).toBe('GRAPHQL_PARSE_FAILED');
    expect(response.errors?.[0]?.message).toMatch(/^Syntax Error/);
    expect(response.data ?? null).toBeNull();
  });

  it.each([
    ['an unknown field', '{ nope }', /Cannot query field "nope" on type "Query"/],
    [
      'an unknown StartTaskInput field',
      'mutation { startTask(input: { kind: "echo", bogus: 1 }) { id } }',
      /Field "bogus" is not defined by type "StartTaskInput"/,
    ],
    ['an argument of the wrong type', '{ tasks(first: "x") { nodes { id } } }', /Int cannot represent/],
    ['an unknown enum value', '{ tasks(status: [BOGUS]) { nodes { id } } }', /"BOGUS" does not exist/],
    ['a missing required argument', '{ task { id } }', /argument "id" of type "ID!" is required/],
  ])('should answer %s with 400 and GRAPHQL_VALIDATION_FAILED naming it', async (_what, query, message) => {
    const response = await server.gql(query, {}, token);
    expect(response.status).toBe(400);
    expect(firstExtensions(response.errors)['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(response.errors?.[0]?.message).toMatch(message);
  });

  it('should answer a variable of the wrong shape with 400 naming the missing input field', async () => {
    const response = await server.gql(START, { input: { input: {} } }, token);
    expect(response.status).toBe(400);
    expect(response.errors?.[0]?.message).toMatch(/Field "kind" of required type "String!" was not provided/);
  });

  it('should have created no task from any of the bad requests above', async () => {
    expect(await listAll(server, token)).toEqual([]);
  });
});

describe('bad graphql-ws frames', () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startTestServer();
    token = await server.token('alice');
  });
  afterAll(() => server.stop());

  const init = () => ({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  const subscribe = (id: string) => ({
    id,
    type: 'subscribe',
    payload: { query: TASK_COMPLETED, variables: { u: 'alice' } },
  });

  it.each<[string, boolean, unknown]>([
    ['a frame that is not JSON, before connection_init', false, 'nope{'],
    ['a frame that is not JSON, after the ack', true, 'nope{'],
    ['a message of an unknown type', true, { type: 'bogus' }],
    ['a JSON array', false, [1, 2]],
    ['JSON null', false, 'null'],
    ['a connection_init whose payload is not an object', false, { type: 'connection_init', payload: 'x' }],
    ['a subscribe without an id', true, { type: 'subscribe', payload: { query: '{ viewer { userId } }' } }],
    [
      'a subscribe with a numeric id',
      true,
      { id: 1, type: 'subscribe', payload: { query: '{ viewer { userId } }' } },
    ],
    ['a subscribe without a payload', true, { id: '1', type: 'subscribe' }],
    ['a subscribe whose query is not a string', true, { id: '1', type: 'subscribe', payload: { query: 5 } }],
    ['a next message, which only a server may send', true, { id: '1', type: 'next', payload: { data: {} } }],
    ['a connection_ack message, which only a server may send', true, { type: 'connection_ack' }],
  ])('should close with 4400 on %s', async (_what, initFirst, frame) => {
    const raw = await openRawSocket(server.wsUrl);
    if (initFirst) await raw.init(init().payload);
    raw.send(frame);
    const closed = await raw.closed;
    expect(closed).toEqual({ code: 4400, reason: 'Invalid message received' });
  });

  it('should close with 4400 on a binary frame that is not JSON', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.socket.send(Buffer.from([0xff, 0x00, 0xfe]));
    expect((await raw.closed).code).toBe(4400);
  });

  it("should close with 4401 Unauthorized on a subscribe before connection_init (graphql-ws's code for it)", async () => {
    const raw = await openRawSocket(server.wsUrl);
    raw.send(subscribe('early'));
    expect(await raw.closed).toEqual({ code: 4401, reason: 'Unauthorized' });
  });

  it('should close with 4429 on a second connection_init', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.send(init());
    expect(await raw.closed).toEqual({ code: 4429, reason: 'Too many initialisation requests' });
  });

  it('should close with 4409 on a subscribe reusing the id of a running subscription', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.send(subscribe('dup'));
    // A query on the same socket answers only after the subscription above was accepted.
    raw.send({ id: 'probe', type: 'subscribe', payload: { query: '{ viewer { userId } }' } });
    await raw.next((m) => m['id'] === 'probe' && m['type'] === 'complete', 'the probe query');
    raw.send(subscribe('dup'));
    expect(await raw.closed).toEqual({ code: 4409, reason: 'Subscriber for dup already exists' });
  });

  it('should close with 4406 when the client offers no subprotocol', async () => {
    const socket = new WebSocket(server.wsUrl);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    try {
      expect(await closed).toBe(4406);
    } finally {
      socket.terminate();
    }
  });

  it('should select no subprotocol and close with 4406 when the client offers only the legacy "graphql-ws"', async () => {
    const answer = await upgradeAndReadClose(server.wsUrl, 'graphql-ws');
    expect(answer).toMatchObject({ status: 101, selected: undefined, code: 4406 });
    expect(answer.reason).toBe('Subprotocol not acceptable');
  });

  it('should select graphql-transport-ws when the client offers it among others', async () => {
    const socket = new WebSocket(server.wsUrl, ['graphql-ws', 'graphql-transport-ws']);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    expect(socket.protocol).toBe('graphql-transport-ws');
    socket.terminate();
  });

  it('should close with 1009 on a message larger than 1 MiB', async () => {
    // graphql-ws reports the socket error on the console; keep the test output quiet.
    const quiet = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const raw = await openRawSocket(server.wsUrl);
      await raw.init(init().payload);
      raw.send('x'.repeat(1_100_000));
      expect((await raw.closed).code).toBe(1009);
    } finally {
      quiet.mockRestore();
    }
  });

  it('should answer a subscribe with a syntax error with an error message and keep the socket open', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.send({ id: 's', type: 'subscribe', payload: { query: 'subscription { ' } });
    const error = await raw.next((m) => m['id'] === 's' && m['type'] === 'error', 'an error message');
    expect(String((messageErrors(error)[0] as { message?: unknown }).message)).toMatch(/^Syntax Error/);
    raw.send({ id: 'ok', type: 'subscribe', payload: { query: '{ viewer { userId } }' } });
    const next = await raw.next((m) => m['id'] === 'ok' && m['type'] === 'next', 'the viewer');
    expect(next['payload']).toEqual({ data: { viewer: { userId: 'alice' } } });
    raw.socket.close();
  });

  it('should answer a subscribe of an unknown field with GRAPHQL_VALIDATION_FAILED and keep the socket open', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.send({ id: 'v', type: 'subscribe', payload: { query: 'subscription { nope }' } });
    const error = await raw.next((m) => m['id'] === 'v' && m['type'] === 'error', 'an error message');
    expect(firstExtensions(messageErrors(error))['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    raw.send({ type: 'ping' });
    await raw.next((m) => m['type'] === 'pong', 'a pong');
    raw.socket.close();
  });

  it('should answer a subscribe missing a required variable with BAD_USER_INPUT', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init(init().payload);
    raw.send({ id: 'm', type: 'subscribe', payload: { query: TASK_COMPLETED } });
    const answer = await raw.next((m) => m['id'] === 'm' && m['type'] === 'next', 'the refusal');
    expect(firstExtensions(messageErrors(answer))['code']).toBe('BAD_USER_INPUT');
    raw.socket.close();
  });
});

describe('bad task input', () => {
  let server: TestServer;
  let alice: string;
  let service: string;

  beforeAll(async () => {
    server = await startTestServer();
    alice = await server.token('alice');
    service = await server.token('ops', { service: true });
  });
  afterAll(() => server.stop());

  it('should refuse an unknown kind with BAD_USER_INPUT, field "kind" and the known kinds', async () => {
    const response = await server.gql(START, { input: { kind: 'nope' } }, alice);
    const extensions = firstExtensions(response.errors);
    expect(extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'kind' });
    expect(extensions['knownKinds']).toEqual(expect.arrayContaining(['sleep', 'echo', 'checksum']));
    expect(response.errors?.[0]?.message).toContain('"nope"');
  });

  it.each<[string, unknown, string]>([
    ['a negative ms', { ms: -1 }, 'input.ms'],
    ['an ms that is a string', { ms: 'x' }, 'input.ms'],
    ['an ms that is not whole', { ms: 1.5 }, 'input.ms'],
    ['a missing ms', {}, 'input.ms'],
    ['an extra property', { ms: 1, extra: true }, 'input.extra'],
    ['an input that is not an object', 5, 'input'],
  ])('should refuse a sleep task with %s with BAD_USER_INPUT naming %s', async (_what, input, field) => {
    const response = await server.gql(START, { input: { kind: 'sleep', input } }, alice);
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(response.errors?.[0]?.message).toMatch(new RegExp(`^${field.replace('.', '\\.')}: `));
    expect(response.data?.['startTask'] ?? null).toBeNull();
  });

  it('should refuse invalid input given as a GraphQL literal the same way', async () => {
    const response = await server.gql(
      'mutation { startTask(input: { kind: "sleep", input: { ms: -1 } }) { id } }',
      {},
      alice,
    );
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.ms' });
  });

  it('should refuse a checksum task with an unknown algorithm with BAD_USER_INPUT naming input.algorithm', async () => {
    const response = await server.gql(
      START,
      { input: { kind: 'checksum', input: { text: 'a', algorithm: 'rot13' } } },
      alice,
    );
    expect(firstExtensions(response.errors)).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'input.algorithm',
    });
  });

  it('should answer cancelling a finished task with CONFLICT and its status', async () => {
    const task = await startTask(server, alice, { kind: 'echo', input: { value: 'done' } });
    await waitForStatus(server, alice, task.id, 'SUCCEEDED');
    const response = await server.gql(CANCEL, { id: task.id }, alice);
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'CONFLICT', status: 'SUCCEEDED' });
    const after = await server.gql<{ task: TaskData }>(GET_TASK, { id: task.id }, alice);
    expect(after.data?.task).toMatchObject({ status: 'SUCCEEDED', result: 'done' });
  });

  it('should answer cancelling an already cancelled task with CONFLICT', async () => {
    const task = await startTask(server, alice, { kind: 'external', input: {} });
    const first = await server.gql<{ cancelTask: TaskData }>(CANCEL, { id: task.id }, alice);
    expect(first.data?.cancelTask.status).toBe('CANCELLED');
    const second = await server.gql(CANCEL, { id: task.id }, alice);
    expect(firstExtensions(second.errors)).toMatchObject({ code: 'CONFLICT', status: 'CANCELLED' });
  });

  it('should answer cancelling an unknown task with NOT_FOUND', async () => {
    const response = await server.gql(CANCEL, { id: 'no-such-task' }, alice);
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'NOT_FOUND', id: 'no-such-task' });
  });

  it('should answer taskUpdated of an unknown task with NOT_FOUND', async () => {
    const client = createWsClient(server.wsUrl, alice);
    const updates = collect(client, 'subscription($id: ID!) { taskUpdated(id: $id) { id } }', { id: 'nope' });
    await updates.done;
    expect(firstExtensions(updates.errors)['code']).toBe('NOT_FOUND');
  });

  it.each([
    [1000, 'first'],
    [-1, 'first'],
  ])('should refuse tasks(first: %i) with BAD_USER_INPUT naming first', async (first, field) => {
    const response = await server.gql(LIST_TASKS, { first }, alice);
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });

  it('should refuse tasks(after: "garbage") with BAD_USER_INPUT naming after', async () => {
    const response = await server.gql(LIST_TASKS, { after: 'garbage' }, alice);
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('should refuse taskCompleted(after: "not-a-cursor") with BAD_USER_INPUT naming after', async () => {
    const client = createWsClient(server.wsUrl, alice);
    const completions = collect(client, TASK_COMPLETED, { u: 'alice', after: 'not-a-cursor' });
    await completions.done;
    expect(completions.values).toEqual([]);
    expect(firstExtensions(completions.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('should return the same task for a reused idempotencyKey with the same input', async () => {
    const input = { kind: 'echo', input: { value: 'once' }, idempotencyKey: 'same-key' };
    const first = await startTask(server, alice, input);
    const second = await startTask(server, alice, input);
    expect(second.id).toBe(first.id);
  });

  it('should refuse a reused idempotencyKey with a different input with CONFLICT naming the first task', async () => {
    const first = await startTask(server, alice, {
      kind: 'echo',
      input: { value: 1 },
      idempotencyKey: 'k-1',
    });
    const response = await server.gql(
      START,
      { input: { kind: 'echo', input: { value: 2 }, idempotencyKey: 'k-1' } },
      alice,
    );
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'CONFLICT', taskId: first.id });
    const otherKind = await server.gql(
      START,
      { input: { kind: 'sleep', input: { ms: 1 }, idempotencyKey: 'k-1' } },
      alice,
    );
    expect(firstExtensions(otherKind.errors)).toMatchObject({ code: 'CONFLICT', taskId: first.id });
  });

  it('should refuse an empty idempotencyKey with BAD_USER_INPUT naming idempotencyKey', async () => {
    const response = await server.gql(
      START,
      { input: { kind: 'echo', input: { value: 1 }, idempotencyKey: '' } },
      alice,
    );
    expect(firstExtensions(response.errors)).toMatchObject({
      code: 'BAD_USER_INPUT',
      field: 'idempotencyKey',
    });
  });

  it('should refuse reportTaskProgress outside 0..1 with BAD_USER_INPUT naming progress', async () => {
    const task = await startTask(server, alice, { kind: 'external', input: {} });
    const response = await server.gql(
      'mutation($id: ID!) { reportTaskProgress(id: $id, progress: 2) { id } }',
      { id: task.id },
      service,
    );
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'progress' });
  });

  it('should refuse completeTask on a task the service runs itself with BAD_USER_INPUT naming id', async () => {
    const task = await startTask(server, alice, { kind: 'sleep', input: { ms: 60_000 } });
    const response = await server.gql(
      'mutation($id: ID!) { completeTask(id: $id, result: 1) { id } }',
      { id: task.id },
      service,
    );
    expect(firstExtensions(response.errors)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    await server.gql(CANCEL, { id: task.id }, alice);
  });
});

describe('invalid environment', () => {
  const SECRET = { AUTH_JWT_SECRET: 'x'.repeat(32) };

  it('should accept an empty environment outside production (control)', () => {
    expect(loadConfig({}).port).toBe(4000);
  });

  it.each<[string, Record<string, string>, string]>([
    ['PORT that is not a number', { PORT: 'abc' }, 'PORT'],
    ['PORT out of range', { PORT: '70000' }, 'PORT'],
    ['PORT that is not whole', { PORT: '80.5' }, 'PORT'],
    ['KEEPALIVE_MS that is not a number', { KEEPALIVE_MS: 'soon' }, 'KEEPALIVE_MS'],
    ['KEEPALIVE_MS too small', { KEEPALIVE_MS: '5' }, 'KEEPALIVE_MS'],
    ['LOG_LEVEL that is unknown', { LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
    ['AUTH_JWT_SECRET shorter than 32 bytes', { AUTH_JWT_SECRET: 'short' }, 'AUTH_JWT_SECRET'],
    ['CORS_ORIGINS that is not a URL', { CORS_ORIGINS: 'not a url' }, 'CORS_ORIGINS'],
    ['CORS_ORIGINS with a path', { CORS_ORIGINS: 'https://app.example.com/path' }, 'CORS_ORIGINS'],
    ['WORKER_CONCURRENCY negative', { WORKER_CONCURRENCY: '-1' }, 'WORKER_CONCURRENCY'],
    ['EVENT_RETENTION of zero', { EVENT_RETENTION: '0' }, 'EVENT_RETENTION'],
    ['REDIS_URL that is not redis://', { REDIS_URL: 'http://localhost:6379' }, 'REDIS_URL'],
    ['GRAPHIQL that is not a boolean', { GRAPHIQL: 'maybe' }, 'GRAPHIQL'],
    [
      'PERSISTED_OPERATIONS_ONLY that is not a boolean',
      { PERSISTED_OPERATIONS_ONLY: 'sometimes' },
      'PERSISTED_OPERATIONS_ONLY',
    ],
    ['AUTH_JWKS_URL that is not a URL', { AUTH_JWKS_URL: 'nope' }, 'AUTH_JWKS_URL'],
    ['AUTH_PUBLIC_KEY that is not a PEM', { AUTH_PUBLIC_KEY: 'nope' }, 'AUTH_PUBLIC_KEY'],
    ['TASK_RETENTION without a unit', { TASK_RETENTION: '30' }, 'TASK_RETENTION'],
    ['TASK_RETENTION in words', { TASK_RETENTION: 'forever' }, 'TASK_RETENTION'],
    ['TASK_RETENTION with an unknown unit', { TASK_RETENTION: '2y' }, 'TASK_RETENTION'],
    ['REDIS_COMMAND_TIMEOUT_MS of zero', { REDIS_COMMAND_TIMEOUT_MS: '0' }, 'REDIS_COMMAND_TIMEOUT_MS'],
    ['MAX_RUNNING_PER_USER negative', { MAX_RUNNING_PER_USER: '-1' }, 'MAX_RUNNING_PER_USER'],
  ])('should refuse %s with a ConfigError naming the variable', (_what, env, variable) => {
    const error = configErrorOf(env);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });

  it('should read TASK_RETENTION as a duration, 0 and off keeping tasks forever, 30 days by default', () => {
    expect(loadConfig({ TASK_RETENTION: '12h' }).taskRetentionMs).toBe(12 * 3_600_000);
    expect(loadConfig({ TASK_RETENTION: '90m' }).taskRetentionMs).toBe(90 * 60_000);
    expect(loadConfig({ TASK_RETENTION: '45S' }).taskRetentionMs).toBe(45_000);
    expect(loadConfig({ TASK_RETENTION: 'off' }).taskRetentionMs).toBe(0);
    expect(loadConfig({ TASK_RETENTION: '0' }).taskRetentionMs).toBe(0);
    expect(loadConfig({}).taskRetentionMs).toBe(30 * 86_400_000);
  });

  it('should give each user a fair share of the workers unless MAX_RUNNING_PER_USER says otherwise', () => {
    expect(loadConfig({ WORKER_CONCURRENCY: '2' }).maxRunningPerUser).toBe(1);
    expect(loadConfig({ WORKER_CONCURRENCY: '32' }).maxRunningPerUser).toBe(16);
    expect(loadConfig({ WORKER_CONCURRENCY: '0' }).maxRunningPerUser).toBe(1);
    expect(loadConfig({ WORKER_CONCURRENCY: '2', MAX_RUNNING_PER_USER: '0' }).maxRunningPerUser).toBe(0);
    expect(loadConfig({ MAX_RUNNING_PER_USER: '3' }).maxRunningPerUser).toBe(3);
  });

  it('should refuse NODE_ENV=production without any AUTH_* key, saying why', () => {
    const error = configErrorOf({ NODE_ENV: 'production' });
    expect(error.variable).toBe('AUTH_JWT_SECRET');
    expect(error.message).toContain('NODE_ENV=production');
    expect(error.message).toMatch(/AUTH_JWKS_URL.*AUTH_PUBLIC_KEY/);
  });

  it('should start in production when a key is set (control)', () => {
    expect(loadConfig({ NODE_ENV: 'production', ...SECRET }).production).toBe(true);
  });

  it('should refuse two AUTH_* keys at once, naming both', () => {
    const error = configErrorOf({ ...SECRET, AUTH_JWKS_URL: 'https://issuer.example.com/jwks.json' });
    expect(error.variable).toBe('AUTH_JWT_SECRET, AUTH_JWKS_URL');
  });

  it('should make the real entry point exit non-zero with a message naming PORT when PORT=abc', async () => {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (
        value !== undefined &&
        !key.startsWith('AUTH_') &&
        !['NODE_ENV', 'REDIS_URL', 'NODE_OPTIONS'].includes(key)
      ) {
        env[key] = value;
      }
    }
    Object.assign(env, { PORT: 'abc', DATA_DIR: makeTempDir(), LOG_LEVEL: 'silent' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += String(chunk);
    });
    child.stdout.resume();
    // Should it start after all, it must not outlive the test.
    const guard = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const exitCode = await new Promise<number | null>((resolve) =>
      child.on('close', (code) => resolve(code)),
    );
    clearTimeout(guard);
    expect(exitCode).not.toBe(0);
    expect(exitCode).not.toBeNull();
    expect(stderr).toMatch(/PORT/);
    expect(stderr).toContain('"abc"');
  });
});

describe('after a barrage of bad input', () => {
  let server: TestServer;
  let carol: string;

  beforeAll(async () => {
    server = await startTestServer();
    carol = await server.token('carol');
  });
  afterAll(() => server.stop());

  it('should still start tasks and deliver every completion exactly once, losing no task', async () => {
    // A first task gives carol a cursor to resume from.
    const first = await startTask(server, carol, { kind: 'echo', input: { value: 0 } });
    await waitForStatus(server, carol, first.id, 'SUCCEEDED');
    const cursor = await server.gql<{ viewer: { lastEventCursor: string | null } }>(LAST_CURSOR, {}, carol);
    const after = cursor.data?.viewer.lastEventCursor ?? null;
    expect(after).not.toBeNull();

    // A subscription that stays open through the whole barrage.
    const liveClient = createWsClient(server.wsUrl, carol);
    const live = collect<{ taskCompleted: { task: TaskData } }>(liveClient, TASK_COMPLETED, {
      u: 'carol',
      after,
    });

    const good: TaskData[] = [];
    const badFrames: unknown[] = ['nope{', { type: 'bogus' }, [1], { type: 'subscribe', payload: {} }];
    for (let round = 0; round < 4; round++) {
      good.push(await startTask(server, carol, { kind: 'sleep', input: { ms: 20 } }));
      const answers = await Promise.all([
        postRaw(server, '{"query": ', carol),
        postRaw(server, '{}', carol),
        postRaw(server, 'hello', carol, 'text/plain'),
        server.gql('{ nope }', {}, carol),
        server.gql('{ viewer { userId } }', {}, 'forged-token'),
        server.gql(START, { input: { kind: 'nope' } }, carol),
        server.gql(START, { input: { kind: 'sleep', input: { ms: -1 } } }, carol),
        server.gql(LIST_TASKS, { first: 1000 }, carol),
        server.gql(CANCEL, { id: 'missing' }, carol),
      ]);
      expect(answers.map((answer) => answer.status)).toEqual([400, 400, 415, 400, 401, 200, 200, 200, 200]);
      const closes = await Promise.all(
        badFrames.map(async (frame) => {
          const raw = await openRawSocket(server.wsUrl);
          if (typeof frame === 'object' && !Array.isArray(frame) && frame !== null && 'payload' in frame) {
            await raw.init({ authorization: `Bearer ${carol}` });
          }
          raw.send(frame);
          return (await raw.closed).code;
        }),
      );
      expect(closes).toEqual([4400, 4400, 4400, 4400]);
      const forbidden = await openRawSocket(server.wsUrl);
      forbidden.send({ type: 'connection_init', payload: { authorization: 'Bearer junk' } });
      expect((await forbidden.closed).code).toBe(4403);
      good.push(await startTask(server, carol, { kind: 'echo', input: { value: round + 1 } }));
    }

    // A client connecting after the barrage resumes from the same cursor and gets every completion.
    const lateClient = createWsClient(server.wsUrl, carol);
    const late = collect<{ taskCompleted: { task: TaskData } }>(lateClient, TASK_COMPLETED, {
      u: 'carol',
      after,
    });
    good.push(await startTask(server, carol, { kind: 'echo', input: { value: 'last' } }));

    const expected = good.map((task) => task.id).sort();
    for (const subscription of [live, late]) {
      const events = await subscription.until(expected.length, `${expected.length} completions`);
      expect(subscription.errors).toEqual([]);
      const ids = events.map((event) => event.taskCompleted.task.id);
      expect([...ids].sort()).toEqual(expected);
      expect(events.every((event) => event.taskCompleted.task.status === 'SUCCEEDED')).toBe(true);
    }

    const stored = await listAll(server, carol);
    expect(stored.map((task) => task.id).sort()).toEqual([first.id, ...expected].sort());
    expect(stored.every((task) => task.status === 'SUCCEEDED')).toBe(true);
    // Exactly once: nothing more arrives on the live subscription than there were tasks.
    expect(live.values).toHaveLength(expected.length);
  });
});
