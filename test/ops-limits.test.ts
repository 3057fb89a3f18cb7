/**
 * Every limit of the service hit by a real client, with a second client on the same server
 * proving that it is unaffected. Runs against both backends (a contract suite).
 */
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from './utils/deferred.js';
import {
  blobKind,
  COMPLETED,
  extensionsOf,
  lastEventCursor,
  messageErrors,
  scrape,
  startTask,
  waitForFinal,
} from './utils/ops.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

type RawSocket = Awaited<ReturnType<typeof openRawSocket>>;
interface CompletedData {
  taskCompleted: { cursor: string; replayed: boolean; task: { id: string; status: string } };
}

/** Subscribes a raw socket to the user's completions under operation id `id`. */
function subscribeCompletions(raw: RawSocket, id: string, userId: string, after?: string) {
  raw.send({ id, type: 'subscribe', payload: { query: COMPLETED, variables: { u: userId, after } } });
}

/** Task ids of the completions a raw socket received for operation `id`. */
function completedIds(raw: RawSocket, id: string): string[] {
  return raw.messages
    .filter((m) => m['id'] === id && m['type'] === 'next')
    .map((m) => (m['payload'] as { data?: CompletedData }).data?.taskCompleted.task.id ?? '');
}

/** Answers a one-shot operation on a raw socket and returns its first message for `id`. */
async function ask(raw: RawSocket, id: string, query: string, variables: Record<string, unknown> = {}) {
  raw.send({ id, type: 'subscribe', payload: { query, variables } });
  return raw.next(
    (m) => m['id'] === id && (m['type'] === 'next' || m['type'] === 'error'),
    `an answer to ${id}`,
  );
}

describe('request body size (MAX_BODY_BYTES=4096)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_BODY_BYTES: '4096' } });
  });
  afterAll(() => server.stop());

  const padded = (bytes: number) =>
    JSON.stringify({ query: '{ viewer { userId } }', variables: { pad: 'x'.repeat(bytes) } });

  it('answers 413 with BAD_USER_INPUT and limit "body" to a body declared larger, and serves the next request', async () => {
    const token = await server.token('body-user');
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: padded(5_000),
    });
    expect(response.status).toBe(413);
    const body = (await response.json()) as { errors: unknown[] };
    expect(extensionsOf(body.errors[0])).toEqual({ code: 'BAD_USER_INPUT', limit: 'body', max: 4096 });

    const other = await server.gql<{ viewer: { userId: string } }>('{ viewer { userId } }', {}, token);
    expect(other.data?.viewer.userId).toBe('body-user');
  });

  it('answers 413 to a chunked body once it passes the limit', async () => {
    const chunks = [padded(3_000).slice(0, 3_000), 'y'.repeat(3_000)];
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: Readable.toWeb(Readable.from(chunks.map((chunk) => Buffer.from(chunk)))) as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(response.status).toBe(413);
  });

  it('accepts a body just under the limit', async () => {
    const token = await server.token('body-user');
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: padded(3_900),
    });
    expect(response.status).toBe(200);
  });

  it('closes a WebSocket that sends a message larger than the limit with 1009 while another socket keeps working', async () => {
    const token = await server.token('body-user');
    const big = await openRawSocket(server.wsUrl);
    const fine = await openRawSocket(server.wsUrl);
    await big.init({ authorization: `Bearer ${token}` });
    await fine.init({ authorization: `Bearer ${token}` });
    big.send({
      id: 'big',
      type: 'subscribe',
      payload: { query: '{ viewer { userId } }', variables: { pad: 'x'.repeat(5_000) } },
    });
    expect((await big.closed).code).toBe(1009);
    const answer = await ask(fine, 'q', '{ viewer { userId } }');
    expect(answer['payload']).toEqual({ data: { viewer: { userId: 'body-user' } } });
    fine.socket.close();
  });
});

describe('operation shape (MAX_QUERY_DEPTH=4, MAX_QUERY_ALIASES=3, MAX_QUERY_TOKENS=200, MAX_QUERY_COST=100)', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({
      env: { MAX_QUERY_DEPTH: '4', MAX_QUERY_ALIASES: '3', MAX_QUERY_TOKENS: '200', MAX_QUERY_COST: '100' },
    });
    token = await server.token('shape-user');
  });
  afterAll(() => server.stop());

  const TOO_DEEP = '{ tasks { edges { node { error { code } } } } }';
  const TOO_MANY_ALIASES =
    '{ a: viewer { userId } b: viewer { userId } c: viewer { userId } d: viewer { userId } }';
  const TOO_MANY_TOKENS = `{ viewer { ${'userId '.repeat(200)} } }`;
  const TOO_COSTLY =
    '{ tasks(first: 5) { edges { cursor node { id kind status progress attempts result input createdAt startedAt finishedAt } } } }';
  const cases = [
    ['depth', TOO_DEEP, 4],
    ['aliases', TOO_MANY_ALIASES, 3],
    ['tokens', TOO_MANY_TOKENS, 200],
    ['cost', TOO_COSTLY, 100],
  ] as const;

  for (const [limit, query, max] of cases) {
    it(`refuses an operation over the ${limit} limit over HTTP with BAD_USER_INPUT, limit "${limit}", max ${max}`, async () => {
      const response = await server.gql(query, {}, token);
      expect(response.data ?? null).toBeNull();
      expect(response.errors?.map(extensionsOf)).toEqual([{ code: 'BAD_USER_INPUT', limit, max }]);
    });

    it(`refuses an operation over the ${limit} limit over WebSocket with an error message and keeps the socket`, async () => {
      const raw = await openRawSocket(server.wsUrl);
      await raw.init({ authorization: `Bearer ${token}` });
      const refused = await ask(raw, 'bad', query);
      expect(refused['type']).toBe('error');
      expect(messageErrors(refused).map(extensionsOf)).toEqual([{ code: 'BAD_USER_INPUT', limit, max }]);
      const fine = await ask(raw, 'fine', '{ viewer { userId } }');
      expect(fine['payload']).toEqual({ data: { viewer: { userId: 'shape-user' } } });
      raw.socket.close();
    });
  }

  it('serves operations within every limit, over HTTP and WebSocket, to another client meanwhile', async () => {
    const other = await server.token('shape-other');
    const http = await server.gql<{ tasks: { edges: unknown[] } }>(
      '{ tasks(first: 1) { edges { node { id } } } }',
      {},
      other,
    );
    expect(http.errors).toBeUndefined();
    const client = createWsClient(server.wsUrl, other);
    const sub = collect<CompletedData>(client, COMPLETED, {
      u: 'shape-other',
      after: await lastEventCursor(server, other),
    });
    const task = await startTask(server, other, 'echo', { value: 1 });
    await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === task.id), 'the completion');
    expect(sub.errors).toEqual([]);
  });
});

describe('startTask rate per user (RATE_LIMIT_START_PER_MINUTE=3)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { RATE_LIMIT_START_PER_MINUTE: '3' } });
  });
  afterAll(() => server.stop());

  const START = 'mutation { startTask(input: { kind: "echo", input: { value: 1 } }) { id } }';

  it('answers the fourth start within the minute with RATE_LIMITED, HTTP 429, retryAfter and Retry-After', async () => {
    const token = await server.token('rate-alice');
    for (let i = 0; i < 3; i++) expect((await server.gql(START, {}, token)).errors).toBeUndefined();

    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: START }),
    });
    expect(response.status).toBe(429);
    const retryAfter = Number(response.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    const body = (await response.json()) as { data: unknown; errors: unknown[] };
    expect(body.data).toBeNull();
    expect(extensionsOf(body.errors[0])).toEqual({ code: 'RATE_LIMITED', retryAfter, limit: 'startTask' });
  });

  it('refuses the same user over WebSocket too: the bucket is per user, not per transport', async () => {
    const token = await server.token('rate-alice');
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${token}` });
    const answer = await ask(raw, 'start', START);
    expect(messageErrors(answer).map((error) => extensionsOf(error)['code'])).toEqual(['RATE_LIMITED']);
    raw.socket.close();
  });

  it('lets another user, and a service caller acting for the limited user, start tasks meanwhile', async () => {
    const bob = await server.token('rate-bob');
    for (let i = 0; i < 3; i++) expect((await server.gql(START, {}, bob)).errors).toBeUndefined();
    const service = await server.token('rate-service', { service: true });
    const onBehalf = await server.gql<{ startTask: { id: string } }>(
      'mutation { startTask(input: { kind: "echo", userId: "rate-alice", input: { value: 2 } }) { id } }',
      {},
      service,
    );
    expect(onBehalf.errors).toBeUndefined();
  });
});

describe('connections per user (MAX_CONNECTIONS_PER_USER=2)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_CONNECTIONS_PER_USER: '2' } });
  });
  afterAll(() => server.stop());

  it("closes a user's third connection with 4420, keeps the first two and another user's, and accepts one again after a close", async () => {
    const alice = await server.token('conn-alice');
    const bob = await server.token('conn-bob');
    const first = await openRawSocket(server.wsUrl);
    const second = await openRawSocket(server.wsUrl);
    await first.init({ authorization: `Bearer ${alice}` });
    await second.init({ authorization: `Bearer ${alice}` });

    const third = await openRawSocket(server.wsUrl);
    third.send({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } });
    const refused = await third.closed;
    expect(refused).toEqual({ code: 4420, reason: 'Too many connections: at most 2 per user' });
    expect(third.messages).toEqual([]);

    const other = await openRawSocket(server.wsUrl);
    await other.init({ authorization: `Bearer ${bob}` });
    expect((await ask(other, 'q', '{ viewer { userId } }'))['payload']).toEqual({
      data: { viewer: { userId: 'conn-bob' } },
    });
    expect((await ask(first, 'q', '{ viewer { userId } }'))['payload']).toEqual({
      data: { viewer: { userId: 'conn-alice' } },
    });

    second.socket.close(1000);
    await second.closed;
    // The server frees the place when it sees the close; until then a new socket may still be refused.
    const again = await waitFor(async () => {
      const raw = await openRawSocket(server.wsUrl);
      raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${alice}` } });
      return Promise.race([
        raw.closed.then(() => undefined),
        raw.next((m) => m['type'] === 'connection_ack', 'an ack').then(() => raw),
      ]);
    }, 'a connection of the user accepted again');
    for (const raw of [first, again, other]) raw.socket.close();
  });
});

describe('subscriptions per connection (MAX_SUBSCRIPTIONS_PER_CONNECTION=2)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { MAX_SUBSCRIPTIONS_PER_CONNECTION: '2' } });
  });
  afterAll(() => server.stop());

  it('refuses a third subscription with LIMIT_EXCEEDED while the first two, queries and another connection keep working', async () => {
    const token = await server.token('subs-user');
    const after = await lastEventCursor(server, token);
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${token}` });
    subscribeCompletions(raw, 's1', 'subs-user', after);
    subscribeCompletions(raw, 's2', 'subs-user', after);
    subscribeCompletions(raw, 's3', 'subs-user', after);
    const refused = await raw.next((m) => m['id'] === 's3' && m['type'] === 'error', 'the refusal of s3');
    expect(messageErrors(refused).map(extensionsOf)).toEqual([
      { code: 'LIMIT_EXCEEDED', limit: 'subscriptionsPerConnection', max: 2 },
    ]);
    expect((await ask(raw, 'q', '{ viewer { userId } }'))['type']).toBe('next');

    const elsewhere = await openRawSocket(server.wsUrl);
    await elsewhere.init({ authorization: `Bearer ${token}` });
    subscribeCompletions(elsewhere, 'e1', 'subs-user', after);

    const first = await startTask(server, token, 'echo', { value: 'first' });
    for (const [socket, id] of [
      [raw, 's1'],
      [raw, 's2'],
      [elsewhere, 'e1'],
    ] as const) {
      await waitFor(() => completedIds(socket, id).includes(first.id), `${id} to receive the completion`);
    }

    // Completing one frees a place on that connection.
    raw.send({ id: 's1', type: 'complete' });
    subscribeCompletions(raw, 's4', 'subs-user', after);
    await waitFor(() => completedIds(raw, 's4').includes(first.id), 's4 to replay the completion');
    expect(raw.messages.filter((m) => m['id'] === 's4' && m['type'] === 'error')).toEqual([]);
    raw.socket.close();
    elsewhere.socket.close();
  });
});

describe('slow consumer (SLOW_CONSUMER_BYTES=1048576)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      env: { SLOW_CONSUMER_BYTES: '1048576', RATE_LIMIT_START_PER_MINUTE: '0' },
      kinds: [blobKind],
    });
  });
  afterAll(() => server.stop());

  const BLOB_COMPLETED = `subscription($u: ID!, $after: String) {
    taskCompleted(userId: $u, after: $after) { cursor replayed task { id status result } }
  }`;

  it('closes a socket that stops reading with 4008 while a reading client gets every completion, and the slow one resumes from its cursor', async () => {
    const token = await server.token('slow-user');
    const after = await lastEventCursor(server, token);
    const reader = createWsClient(server.wsUrl, token);
    const steady = collect<CompletedData>(reader, COMPLETED, { u: 'slow-user', after });

    const slow = await openRawSocket(server.wsUrl);
    await slow.init({ authorization: `Bearer ${token}` });
    slow.send({
      id: 'slow',
      type: 'subscribe',
      payload: { query: BLOB_COMPLETED, variables: { u: 'slow-user', after } },
    });
    const warmup = await startTask(server, token, 'echo', { value: 'warm-up' });
    await waitFor(() => completedIds(slow, 'slow').includes(warmup.id), 'the slow socket to be subscribed');
    slow.socket.pause();

    // Large completions until the server gives up on the paused socket (the kernel buffers a few MB first).
    const started: string[] = [warmup.id];
    await waitFor(
      async () => {
        for (let i = 0; i < 5; i++)
          started.push((await startTask(server, token, 'blob', { size: 262_144 })).id);
        await waitForFinal(server, token, started.at(-1) ?? '');
        return (await scrape(server)).value('tss_slow_consumer_disconnects_total') === 1;
      },
      'the slow consumer to be disconnected',
      60_000,
    );
    slow.socket.resume();
    expect((await slow.closed).code).toBe(4008);

    await waitFor(
      () => started.every((id) => steady.values.some((v) => v.taskCompleted.task.id === id)),
      'the reading client to receive every completion',
    );
    expect(steady.errors).toEqual([]);

    // Resume from the last cursor the slow socket received: the rest arrives, nothing twice.
    const received = slow.messages
      .filter((m) => m['id'] === 'slow' && m['type'] === 'next')
      .map((m) => (m['payload'] as { data: CompletedData }).data.taskCompleted);
    const resumed = collect<CompletedData>(createWsClient(server.wsUrl, token), COMPLETED, {
      u: 'slow-user',
      after: received.at(-1)?.cursor,
    });
    const missing = started.filter((id) => !received.some((event) => event.task.id === id));
    expect(missing.length).toBeGreaterThan(0);
    await waitFor(
      () => missing.every((id) => resumed.values.some((v) => v.taskCompleted.task.id === id)),
      'the resumed subscription to replay what the slow socket missed',
    );
    const all = [
      ...received.map((event) => event.task.id),
      ...resumed.values.map((v) => v.taskCompleted.task.id),
    ];
    expect(new Set(all).size).toBe(all.length);
    expect(resumed.values.every((v) => v.taskCompleted.replayed)).toBe(true);
  });
});

describe('WebSocket Origin allowlist (CORS_ORIGINS=https://app.example.com)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { CORS_ORIGINS: 'https://app.example.com' } });
  });
  afterAll(() => server.stop());

  it('refuses an upgrade from another origin with 403 and serves the allowed origin and non-browser clients', async () => {
    await expect(
      openRawSocket(server.wsUrl, 'graphql-transport-ws', { Origin: 'https://evil.example.com' }),
    ).rejects.toThrow(/403/);

    const token = await server.token('origin-user');
    const variants: Record<string, string>[] = [{ Origin: 'https://app.example.com' }, {}];
    for (const headers of variants) {
      const raw = await openRawSocket(server.wsUrl, 'graphql-transport-ws', headers);
      await raw.init({ authorization: `Bearer ${token}` });
      expect((await ask(raw, 'q', '{ viewer { userId } }'))['payload']).toEqual({
        data: { viewer: { userId: 'origin-user' } },
      });
      raw.socket.close();
    }
  });
});

describe('connection-init timeout (CONNECTION_INIT_TIMEOUT_MS=400)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { CONNECTION_INIT_TIMEOUT_MS: '400' } });
  });
  afterAll(() => server.stop());

  it('closes a socket that never sends connection_init with 4408 and keeps one that did', async () => {
    const token = await server.token('init-user');
    const silent = await openRawSocket(server.wsUrl);
    const prompt = await openRawSocket(server.wsUrl);
    await prompt.init({ authorization: `Bearer ${token}` });
    expect((await silent.closed).code).toBe(4408);
    expect(prompt.socket.readyState).toBe(WebSocket.OPEN);
    expect((await ask(prompt, 'q', '{ viewer { userId } }'))['payload']).toEqual({
      data: { viewer: { userId: 'init-user' } },
    });
    prompt.socket.close();
  });
});

describe('token expiry', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('ends a subscription whose per-operation token expires with UNAUTHENTICATED, keeping the socket and its other subscriptions', async () => {
    const shortLived = await server.token('expiry-user', { expiresIn: 2 });
    const longLived = await server.token('expiry-user');
    const after = await lastEventCursor(server, longLived);
    const raw = await openRawSocket(server.wsUrl);
    await raw.init();
    const withHeader = (id: string, token: string) =>
      raw.send({
        id,
        type: 'subscribe',
        payload: {
          query: COMPLETED,
          variables: { u: 'expiry-user', after },
          extensions: { headers: { Authorization: `Bearer ${token}` } },
        },
      });
    withHeader('short', shortLived);
    withHeader('long', longLived);

    const ended = await raw.next((m) => m['id'] === 'short' && m['type'] === 'error', 'the short one to end');
    const [error] = messageErrors(ended);
    expect(extensionsOf(error)).toEqual({ code: 'UNAUTHENTICATED' });
    expect((error as { message: string }).message).toMatch(/token expired/);

    expect(raw.socket.readyState).toBe(WebSocket.OPEN);
    const task = await startTask(server, longLived, 'echo', { value: 'after expiry' });
    await waitFor(
      () => completedIds(raw, 'long').includes(task.id),
      'the long-lived subscription to deliver',
    );
    expect(completedIds(raw, 'short')).toEqual([]);
    raw.socket.close();
  });

  it('ends an SSE subscription with UNAUTHENTICATED when its token expires', async () => {
    const shortLived = await server.token('expiry-sse', { expiresIn: 2 });
    const response = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${shortLived}`,
      },
      body: JSON.stringify({ query: COMPLETED, variables: { u: 'expiry-sse' } }),
    });
    expect(response.status).toBe(200);
    // The stream ends (the read completes) only because the token expired.
    const text = await response.text();
    const errors = [...text.matchAll(/^data: (.*)$/gm)]
      .map((match) => JSON.parse(match[1] ?? '{}') as { errors?: unknown[] })
      .flatMap((payload) => payload.errors ?? []);
    expect(errors.map(extensionsOf)).toEqual([{ code: 'UNAUTHENTICATED' }]);
  });

  it('closes a connection whose own token expires with 4403 while another connection keeps receiving', async () => {
    const shortLived = await server.token('expiry-conn', { expiresIn: 2 });
    const longLived = await server.token('expiry-conn');
    const after = await lastEventCursor(server, longLived);
    const short = await openRawSocket(server.wsUrl);
    await short.init({ authorization: `Bearer ${shortLived}` });
    subscribeCompletions(short, 's', 'expiry-conn', after);
    const steady = collect<CompletedData>(createWsClient(server.wsUrl, longLived), COMPLETED, {
      u: 'expiry-conn',
      after,
    });
    expect(await short.closed).toEqual({ code: 4403, reason: 'Forbidden: token expired' });
    const task = await startTask(server, longLived, 'echo', { value: 'still delivered' });
    await waitFor(() => steady.values.some((v) => v.taskCompleted.task.id === task.id), 'the completion');
    expect(steady.errors).toEqual([]);
  });
});

describe('revokeUserConnections', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  const REVOKE = 'mutation($u: ID!) { revokeUserConnections(userId: $u) }';

  it("closes every connection of the user with 4403, returns how many, and leaves another user's connection open", async () => {
    const alice = await server.token('revoke-alice');
    const bob = await server.token('revoke-bob');
    const service = await server.token('revoke-service', { service: true });
    const sockets = [await openRawSocket(server.wsUrl), await openRawSocket(server.wsUrl)];
    for (const raw of sockets) await raw.init({ authorization: `Bearer ${alice}` });
    const other = await openRawSocket(server.wsUrl);
    await other.init({ authorization: `Bearer ${bob}` });

    const revoked = await server.gql<{ revokeUserConnections: number }>(
      REVOKE,
      { u: 'revoke-alice' },
      service,
    );
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data?.revokeUserConnections).toBe(2);
    for (const raw of sockets) {
      expect(await raw.closed).toEqual({ code: 4403, reason: 'Forbidden: connections revoked' });
    }
    expect((await ask(other, 'q', '{ viewer { userId } }'))['payload']).toEqual({
      data: { viewer: { userId: 'revoke-bob' } },
    });
    expect((await scrape(server)).value('tss_connections_revoked_total')).toBe(2);
    other.socket.close();
  });

  it('refuses a caller without the service role with FORBIDDEN and closes nothing', async () => {
    const alice = await server.token('revoke-carol');
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${alice}` });
    const refused = await server.gql(REVOKE, { u: 'revoke-carol' }, alice);
    expect(refused.errors?.map((error) => extensionsOf(error)['code'])).toEqual(['FORBIDDEN']);
    expect((await ask(raw, 'q', '{ viewer { userId } }'))['type']).toBe('next');
    raw.socket.close();
  });
});
