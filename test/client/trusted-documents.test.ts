import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { StartTaskDocument, TaskUpdatedDocument } from '../../src/client/generated/graphql.js';
import type { TaskClientOptions } from '../../src/client/index.js';
import { recordCompletions, createTestTaskClient as taskClient } from '../utils/task-clients.js';
import { startTestServer, type TestServer } from '../utils/tserver.js';

const UNKNOWN_HASH = 'a'.repeat(64);

interface SentOperation {
  readonly query?: string;
  readonly operationName?: string;
  readonly extensions?: { persistedQuery?: { sha256Hash?: string } };
}

/** The hex sha256 codegen gave a typed document. */
function hashOf(document: unknown): string {
  const hash = (document as { __meta__: { hash: string } }).__meta__.hash;
  return hash.replace(/^sha256:/, '');
}

const byHashOnly = (op: SentOperation) =>
  !op.query && typeof op.extensions?.persistedQuery?.sha256Hash === 'string';
const byText = (op: SentOperation) => typeof op.query === 'string' && op.query.length > 0;

/**
 * A `fetch` and a `ws` WebSocket that record every operation the SDK sends, and send the hash of
 * `unknown` documents as one the server holds no document for (as a server built without them).
 */
function recordingTransport(unknown: readonly string[] = []) {
  const http: SentOperation[] = [];
  const ws: SentOperation[] = [];
  const disguise = (op: SentOperation): SentOperation => {
    const hash = op.extensions?.persistedQuery?.sha256Hash;
    if (op.query || hash === undefined || !unknown.includes(hash)) return op;
    return {
      ...op,
      extensions: {
        ...op.extensions,
        persistedQuery: { ...op.extensions?.persistedQuery, sha256Hash: UNKNOWN_HASH },
      },
    };
  };
  const recordingFetch: typeof fetch = async (input, init) => {
    if (typeof init?.body !== 'string') return fetch(input, init);
    const op = JSON.parse(init.body) as SentOperation;
    http.push(op);
    return fetch(input, { ...init, body: JSON.stringify(disguise(op)) });
  };
  class RecordingWebSocket extends WebSocket {
    // graphql-ws sends each message as one string.
    override send(data: Parameters<WebSocket['send']>[0], ...rest: unknown[]): void {
      let sent = data;
      if (typeof data === 'string') {
        const message = JSON.parse(data) as { type?: string; payload?: SentOperation };
        if (message.type === 'subscribe' && message.payload) {
          ws.push(message.payload);
          sent = JSON.stringify({ ...message, payload: disguise(message.payload) });
        }
      }
      (super.send as (...args: unknown[]) => void).call(this, sent, ...rest);
    }
  }
  return {
    http,
    ws,
    options: {
      fetch: recordingFetch,
      webSocketImpl: RecordingWebSocket,
    } satisfies Partial<TaskClientOptions>,
  };
}

/** Starts an echo task, waits for it, and sees onTaskCompleted deliver it. */
async function startWaitAndHear(
  server: TestServer,
  userId: string,
  options: Partial<TaskClientOptions> = {},
) {
  const client = taskClient({ url: server.url, token: await server.token(userId), ...options });
  const completions = recordCompletions(client);
  const task = await client.startTask({ kind: 'echo', input: { value: userId } });
  const done = await client.waitForTask(task.id);
  expect(done).toMatchObject({ id: task.id, status: 'SUCCEEDED' });
  await completions.until([task.id]);
  expect(client.errors).toEqual([]);
  return client;
}

describe('the SDK against a server with PERSISTED_OPERATIONS_ONLY=true', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { PERSISTED_OPERATIONS_ONLY: 'true' } });
  });
  afterAll(() => server.stop());

  it('should start a task, wait for it and hear of its completion, sending only hashes over HTTP and graphql-ws', async () => {
    const transport = recordingTransport();
    await startWaitAndHear(server, 'trusted-only', transport.options);
    expect(transport.http.length).toBeGreaterThan(0);
    expect(transport.ws.length).toBeGreaterThan(0);
    expect([...transport.http, ...transport.ws].filter((op) => !byHashOnly(op))).toEqual([]);
  });

  it('should be refused with PERSISTED_QUERY_ONLY only when trustedDocuments is false', async () => {
    const token = await server.token('trusted-off');
    expect(await taskClient({ url: server.url, token }).taskKinds()).not.toEqual([]);
    const off = taskClient({ url: server.url, token, trustedDocuments: false });
    await expect(off.taskKinds()).rejects.toMatchObject({ code: 'PERSISTED_QUERY_ONLY' });
  });
});

describe('the SDK against a server that accepts text too (default)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('should start a task, wait for it and hear of its completion, sending hashes (text with trustedDocuments false)', async () => {
    const hashes = recordingTransport();
    await startWaitAndHear(server, 'trusted-default', hashes.options);
    expect(hashes.ws.length).toBeGreaterThan(0);
    expect([...hashes.http, ...hashes.ws].filter((op) => !byHashOnly(op))).toEqual([]);

    const texts = recordingTransport();
    await startWaitAndHear(server, 'trusted-text', { ...texts.options, trustedDocuments: false });
    expect(texts.ws.length).toBeGreaterThan(0);
    expect([...texts.http, ...texts.ws].filter((op) => !byText(op) || op.extensions?.persistedQuery)).toEqual(
      [],
    );
  });

  it('should resend an operation the server has no document for with its text, and send it as text from then on', async () => {
    const startTask = hashOf(StartTaskDocument);
    const taskUpdated = hashOf(TaskUpdatedDocument);
    const transport = recordingTransport([startTask, taskUpdated]);
    const client = await startWaitAndHear(server, 'trusted-fallback', transport.options);
    const second = await client.startTask({ kind: 'echo', input: { value: 'again' } });
    await client.waitForTask(second.id);

    const starts = transport.http.filter((op) => op.operationName === 'StartTask');
    expect(starts.map((op) => (byHashOnly(op) ? 'hash' : byText(op) ? 'text' : 'neither'))).toEqual([
      'hash',
      'text',
      'text',
    ]);
    const updates = transport.ws.filter((op) => op.operationName === 'TaskUpdated');
    expect(updates.map((op) => (byHashOnly(op) ? 'hash' : byText(op) ? 'text' : 'neither'))).toEqual([
      'hash',
      'text',
      'text',
    ]);
    // The operations the server holds still go by hash.
    const others = [...transport.http, ...transport.ws].filter(
      (op) => op.operationName !== 'StartTask' && op.operationName !== 'TaskUpdated',
    );
    expect(others.length).toBeGreaterThan(0);
    expect(others.filter((op) => !byHashOnly(op))).toEqual([]);
  });
});

describe('the SDK against a server of an earlier version (no trusted documents)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('should resend an HTTP operation answered "Must provide query string" with its text, and send it as text from then on', async () => {
    const sent: SentOperation[] = [];
    // An earlier server knows no persistedQuery: an operation without text is a bad request to it.
    const earlierServer: typeof fetch = async (input, init) => {
      const op = typeof init?.body === 'string' ? (JSON.parse(init.body) as SentOperation) : {};
      sent.push(op);
      if (!op.query) {
        return new Response(
          JSON.stringify({
            errors: [{ message: 'Must provide query string.', extensions: { code: 'BAD_REQUEST' } }],
          }),
          { status: 400, headers: { 'content-type': 'application/graphql-response+json' } },
        );
      }
      return fetch(input, init);
    };
    const client = taskClient({
      url: server.url,
      token: await server.token('earlier'),
      fetch: earlierServer,
    });
    expect(await client.taskKinds()).not.toEqual([]);
    expect(await client.taskKinds()).not.toEqual([]);
    expect(sent.map((op) => (byHashOnly(op) ? 'hash' : byText(op) ? 'text' : 'neither'))).toEqual([
      'hash',
      'text',
      'text',
    ]);
    expect(client.errors).toEqual([]);
  });
});
