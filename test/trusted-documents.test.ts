import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import SDK_DOCUMENTS from '../src/client/generated/persisted-documents.json' with { type: 'json' };
import { startTestServer, type TestServer } from './utils/tserver.js';
import { openRawSocket } from './utils/ws-clients.js';

type GraphQLErrorBody = { message: string; extensions?: Record<string, unknown> };
type GraphQLBody = { data?: Record<string, unknown> | null; errors?: GraphQLErrorBody[] };

/** The plain sha256 (hex) of the SDK's operation named `name`, checked against its text. */
function hashOf(name: string): string {
  const entry = Object.entries(SDK_DOCUMENTS).find(([, text]) =>
    new RegExp(`(^| )(query|mutation|subscription) ${name}\\b`).test(text),
  );
  if (!entry) throw new Error(`no SDK document named ${name}`);
  const [key, text] = entry;
  const hex = createHash('sha256').update(text).digest('hex');
  expect(key).toBe(`sha256:${hex}`);
  return hex;
}

const persisted = (sha256Hash: string) => ({ persistedQuery: { version: 1, sha256Hash } });
const UNKNOWN_HASH = 'a'.repeat(64);
const VIEWER_TEXT = '{ viewer { userId } }';

async function post(server: TestServer, token: string, body: Record<string, unknown>) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as GraphQLBody };
}

/** Every payload of an SSE answer (`event: next`), read to its end. */
async function postSse(server: TestServer, token: string, body: Record<string, unknown>) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return [...text.matchAll(/^data: (.+)$/gm)].map((match) => JSON.parse(match[1] ?? '{}') as GraphQLBody);
}

async function startEcho(server: TestServer, token: string): Promise<string> {
  const { body } = await post(server, token, {
    extensions: persisted(hashOf('StartTask')),
    variables: { input: { kind: 'echo', input: { value: 'trusted' } } },
  });
  expect(body.errors).toBeUndefined();
  const id = (body.data?.['startTask'] as { id?: string } | undefined)?.id;
  if (!id) throw new Error('startTask returned no task');
  return id;
}

/** Runs one graphql-ws subscribe; resolves with its `next` payloads and its `error` message, if any. */
async function wsSubscribe(server: TestServer, token: string, payload: Record<string, unknown>) {
  const socket = await openRawSocket(server.wsUrl);
  await socket.init({ authorization: `Bearer ${token}` });
  socket.send({ id: 'op', type: 'subscribe', payload });
  const end = await socket.next(
    (message) => message['id'] === 'op' && (message['type'] === 'complete' || message['type'] === 'error'),
    'the operation to end',
  );
  const nexts = socket.messages
    .filter((message) => message['id'] === 'op' && message['type'] === 'next')
    .map((message) => message['payload'] as GraphQLBody);
  socket.socket.close();
  return { nexts, errors: end['type'] === 'error' ? (end['payload'] as GraphQLErrorBody[]) : [] };
}

const statusesOf = (payloads: readonly GraphQLBody[]) =>
  payloads.map((payload) => (payload.data?.['taskUpdated'] as { status?: string } | undefined)?.status);

describe('trusted documents, arbitrary documents allowed (default)', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer();
    token = await server.token('trusted-user');
  });

  it('runs an SDK query sent by its sha256 hash without query over HTTP POST, and text as before', async () => {
    const { status, body } = await post(server, token, { extensions: persisted(hashOf('Viewer')) });
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data?.['viewer']).toMatchObject({ userId: 'trusted-user' });
    const text = await post(server, token, { query: VIEWER_TEXT });
    expect(text.body.data?.['viewer']).toEqual({ userId: 'trusted-user' });
  });

  it('accepts the hash with the sha256: prefix codegen writes in the documents', async () => {
    const { body } = await post(server, token, { extensions: persisted(`sha256:${hashOf('Viewer')}`) });
    expect(body.data?.['viewer']).toMatchObject({ userId: 'trusted-user' });
  });

  it('runs a subscription sent by hash over SSE to its final status', async () => {
    const id = await startEcho(server, token);
    const payloads = await postSse(server, token, {
      extensions: persisted(hashOf('TaskUpdated')),
      variables: { id },
    });
    expect(payloads.flatMap((payload) => payload.errors ?? [])).toEqual([]);
    expect(statusesOf(payloads).at(-1)).toBe('SUCCEEDED');
  });

  it('runs a query sent by hash over SSE with GET', async () => {
    const url = new URL(server.url);
    url.searchParams.set('extensions', JSON.stringify(persisted(hashOf('Viewer'))));
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    });
    const text = await response.text();
    const payloads = [...text.matchAll(/^data: (.+)$/gm)].map(
      (match) => JSON.parse(match[1] ?? '{}') as GraphQLBody,
    );
    expect(payloads[0]?.data?.['viewer']).toMatchObject({ userId: 'trusted-user' });
  });

  it('runs a subscription sent by hash without query over graphql-ws to its final status', async () => {
    const id = await startEcho(server, token);
    const { nexts, errors } = await wsSubscribe(server, token, {
      extensions: persisted(hashOf('TaskUpdated')),
      variables: { id },
    });
    expect(errors).toEqual([]);
    expect(statusesOf(nexts).at(-1)).toBe('SUCCEEDED');
  });

  it('refuses an unknown hash with PERSISTED_QUERY_NOT_FOUND over HTTP and graphql-ws', async () => {
    const http = await post(server, token, { extensions: persisted(UNKNOWN_HASH) });
    expect(http.status).toBe(400);
    expect(http.body.errors?.[0]?.message).toMatch(/^PersistedQueryNotFound/);
    expect(http.body.errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_NOT_FOUND');
    const ws = await wsSubscribe(server, token, { extensions: persisted(UNKNOWN_HASH) });
    expect(ws.errors.map((error) => error.extensions)).toEqual([{ code: 'PERSISTED_QUERY_NOT_FOUND' }]);
  });
});

describe('trusted documents with PERSISTED_OPERATIONS_ONLY=true', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({ env: { PERSISTED_OPERATIONS_ONLY: 'true' } });
    token = await server.token('trusted-only');
  });

  const expectOnlyError = (errors: readonly GraphQLErrorBody[] | undefined) => {
    expect(errors).toHaveLength(1);
    expect(errors?.[0]?.message).toMatch(/^Only trusted documents are accepted/);
    expect(errors?.[0]?.extensions?.['code']).toBe('PERSISTED_QUERY_ONLY');
  };

  it('refuses a document sent as text over HTTP POST with 400 and PERSISTED_QUERY_ONLY', async () => {
    const { status, body } = await post(server, token, { query: VIEWER_TEXT });
    expect(status).toBe(400);
    expect(body.data ?? null).toBeNull();
    expectOnlyError(body.errors);
  });

  it('refuses a document sent as text over SSE', async () => {
    const payloads = await postSse(server, token, { query: 'subscription { taskUpdated(id: "x") { id } }' });
    expectOnlyError(payloads.flatMap((payload) => payload.errors ?? []));
  });

  it('refuses a document sent as text over graphql-ws', async () => {
    const { nexts, errors } = await wsSubscribe(server, token, { query: VIEWER_TEXT });
    expect(nexts).toEqual([]);
    expect(errors.map((error) => error.extensions)).toEqual([{ code: 'PERSISTED_QUERY_ONLY' }]);
  });

  it('refuses text even when a known hash comes with it', async () => {
    const { body } = await post(server, token, {
      query: VIEWER_TEXT,
      extensions: persisted(hashOf('Viewer')),
    });
    expectOnlyError(body.errors);
  });

  it('still runs SDK documents by hash over HTTP, SSE and graphql-ws', async () => {
    const { body } = await post(server, token, { extensions: persisted(hashOf('Viewer')) });
    expect(body.data?.['viewer']).toMatchObject({ userId: 'trusted-only' });
    const id = await startEcho(server, token);
    const sse = await postSse(server, token, {
      extensions: persisted(hashOf('TaskUpdated')),
      variables: { id },
    });
    expect(statusesOf(sse).at(-1)).toBe('SUCCEEDED');
    const ws = await wsSubscribe(server, token, {
      extensions: persisted(hashOf('TaskUpdated')),
      variables: { id },
    });
    expect(ws.errors).toEqual([]);
    expect(statusesOf(ws.nexts).at(-1)).toBe('SUCCEEDED');
  });
});
