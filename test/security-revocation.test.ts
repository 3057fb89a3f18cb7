/**
 * Revocation on every transport and connection caps that hold, tried as an attacker would against
 * a real server, on either backend (a contract suite). The repros of the security review, items 1
 * (revocation) and 2 (caps); the cases across gateway processes are in
 * test/redis/revocation-gateways.test.ts.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from './utils/deferred.js';
import { COMPLETED, extensionsOf, lastEventCursor, messageErrors, scrape, startTask } from './utils/ops.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

type RawSocket = Awaited<ReturnType<typeof openRawSocket>>;
interface CompletedData {
  taskCompleted: { cursor: string; replayed: boolean; task: { id: string; status: string } };
}
interface Payload {
  data?: CompletedData | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

const REVOKE = 'mutation($u: ID!) { revokeUserConnections(userId: $u) }';
const VIEWER = '{ viewer { userId } }';

/** The operation's token in `extensions.headers`, as GraphiQL sends it. */
function withHeader(token: string) {
  return { headers: { authorization: `Bearer ${token}` } };
}

/** Task ids of the completions a raw socket received for operation `id`. */
function completedIds(raw: RawSocket, id: string): string[] {
  return raw.messages
    .filter((m) => m['id'] === id && m['type'] === 'next')
    .map((m) => (m['payload'] as Payload).data?.taskCompleted.task.id ?? '');
}

/** Sends a one-shot operation on a raw socket; resolves with its first `next` or `error` message. */
async function ask(raw: RawSocket, id: string, query: string, extensions?: Record<string, unknown>) {
  raw.send({ id, type: 'subscribe', payload: { query, ...(extensions ? { extensions } : {}) } });
  return raw.next(
    (m) => m['id'] === id && (m['type'] === 'next' || m['type'] === 'error'),
    `an answer to ${id}`,
  );
}

/** The `extensions.code` of each error of a graphql-ws message. */
function codes(message: Record<string, unknown>): unknown[] {
  return messageErrors(message).map((error) => extensionsOf(error)['code']);
}

/** Sends `connection_init` with `token`; resolves with `ack` or with how the server closed the socket. */
async function connectWith(server: TestServer, token: string) {
  const raw = await openRawSocket(server.wsUrl);
  raw.send({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } });
  const outcome = await Promise.race([
    raw.closed,
    raw.next((m) => m['type'] === 'connection_ack', 'an ack').then(() => 'ack' as const),
  ]);
  return { raw, outcome };
}

/** A subscription over Server-Sent Events, read in the background. */
async function openEventStream(server: TestServer, variables: Record<string, unknown>, token: string) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query: COMPLETED, variables }),
  });
  const reader = response.body?.getReader();
  if (!reader) throw new Error(`no event stream (HTTP ${response.status})`);
  const payloads: Payload[] = [];
  let ended = false;
  const done = (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for (;;) {
      const { done: finished, value } = await reader.read();
      if (finished) break;
      buffered += decoder.decode(value, { stream: true });
      for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
        const data = buffered
          .slice(0, end)
          .split('\n')
          .find((line) => line.startsWith('data: '));
        buffered = buffered.slice(end + 2);
        if (data) payloads.push(JSON.parse(data.slice(6)) as Payload);
      }
    }
  })()
    // The server closing the stream without an end (a stopped server) ends it too.
    .catch(() => undefined)
    .finally(() => {
      ended = true;
    });
  return {
    status: response.status,
    done,
    get ended() {
      return ended;
    },
    taskIds: () => payloads.flatMap((payload) => payload.data?.taskCompleted.task.id ?? []),
    errors: () => payloads.flatMap((payload) => payload.errors ?? []),
    cancel: () => reader.cancel().catch(() => undefined),
  };
}

/** Waits until the clock is past the second of `since` (epoch ms): a token minted then has a later `iat`. */
async function untilNextSecond(since: number): Promise<void> {
  const wait = (Math.floor(since / 1000) + 1) * 1000 - Date.now();
  if (wait > 0) await delay(wait + 5);
}

describe('revokeUserConnections on every transport (repro 1)', () => {
  let server: TestServer;
  let service: string;
  beforeAll(async () => {
    server = await startTestServer();
    service = await server.token('revocation-service', { service: true });
  });
  afterAll(() => server.stop());

  it('closes a socket whose subscription carried the token per operation with 4403 and ends an SSE stream with UNAUTHENTICATED, and counts both', async () => {
    const alice = await server.token('rev-alice');
    const bob = await server.token('rev-bob');
    const after = await lastEventCursor(server, alice);
    const perOperation = await openRawSocket(server.wsUrl);
    await perOperation.init();
    perOperation.send({
      id: 's',
      type: 'subscribe',
      payload: { query: COMPLETED, variables: { u: 'rev-alice', after }, extensions: withHeader(alice) },
    });
    const sse = await openEventStream(server, { u: 'rev-alice', after }, alice);
    expect(sse.status).toBe(200);
    const bobsSocket = await openRawSocket(server.wsUrl);
    await bobsSocket.init({ authorization: `Bearer ${bob}` });
    const first = await startTask(server, alice, 'echo', { value: 'before the revocation' });
    await waitFor(
      () => completedIds(perOperation, 's').includes(first.id) && sse.taskIds().includes(first.id),
      'the socket and the SSE stream to deliver the first completion',
    );

    const revoked = await server.gql<{ revokeUserConnections: number }>(REVOKE, { u: 'rev-alice' }, service);
    expect(revoked.errors).toBeUndefined();
    expect(revoked.data?.revokeUserConnections).toBe(2);
    expect(await perOperation.closed).toEqual({ code: 4403, reason: 'Forbidden: connections revoked' });
    await sse.done;
    expect(sse.errors().map(extensionsOf)).toEqual([{ code: 'UNAUTHENTICATED' }]);
    expect(sse.errors()[0]?.message).toMatch(/token revoked/);
    expect((await scrape(server)).value('tss_connections_revoked_total')).toBe(2);

    // Another user's socket is untouched.
    expect((await ask(bobsSocket, 'q', VIEWER))['payload']).toEqual({
      data: { viewer: { userId: 'rev-bob' } },
    });
    bobsSocket.socket.close();
  });

  it('refuses every token of the user issued before the revocation, even with nothing open — HTTP 401, 4403 at connect, UNAUTHENTICATED per operation and for SSE — and accepts one issued after', async () => {
    const old = await server.token('rev-carol');
    const revoked = await server.gql<{ revokeUserConnections: number }>(REVOKE, { u: 'rev-carol' }, service);
    expect(revoked.data?.revokeUserConnections).toBe(0);
    const revokedAt = Date.now();

    const http = await server.gql(VIEWER, {}, old);
    expect(http.status).toBe(401);
    expect(http.errors?.map(extensionsOf)).toEqual([{ code: 'UNAUTHENTICATED' }]);
    expect(http.errors?.[0]?.message).toMatch(/token revoked/);

    const connect = await connectWith(server, old);
    expect(connect.outcome).toEqual({ code: 4403, reason: 'Forbidden: token revoked' });

    const anonymous = await openRawSocket(server.wsUrl);
    await anonymous.init();
    const perOperation = await ask(anonymous, 'old', VIEWER, withHeader(old));
    expect(perOperation['type']).toBe('error');
    expect(codes(perOperation)).toEqual(['UNAUTHENTICATED']);

    const sse = await openEventStream(server, { u: 'rev-carol' }, old);
    await sse.done;
    expect(sse.status).toBe(401);

    await untilNextSecond(revokedAt);
    const fresh = await server.token('rev-carol');
    expect((await server.gql(VIEWER, {}, fresh)).data).toEqual({ viewer: { userId: 'rev-carol' } });
    const reconnected = await connectWith(server, fresh);
    expect(reconnected.outcome).toBe('ack');
    expect((await ask(anonymous, 'fresh', VIEWER, withHeader(fresh)))['payload']).toEqual({
      data: { viewer: { userId: 'rev-carol' } },
    });
    reconnected.raw.socket.close();
    anonymous.socket.close();
  });

  it('serves a connection made with a token issued after the revocation: its subscription delivers the next completion', async () => {
    const old = await server.token('rev-dave');
    const oldSocket = await openRawSocket(server.wsUrl);
    await oldSocket.init({ authorization: `Bearer ${old}` });
    await server.gql(REVOKE, { u: 'rev-dave' }, service);
    const revokedAt = Date.now();
    expect((await oldSocket.closed).code).toBe(4403);

    await untilNextSecond(revokedAt);
    const fresh = await server.token('rev-dave');
    const client = createWsClient(server.wsUrl, fresh);
    const completions = collect<CompletedData>(client, COMPLETED, {
      u: 'rev-dave',
      after: await lastEventCursor(server, fresh),
    });
    const task = await startTask(server, fresh, 'echo', { value: 'fresh token' });
    await completions.until(1, 'the completion on the fresh connection');
    expect(completions.values.map((v) => v.taskCompleted.task.id)).toEqual([task.id]);
    expect(completions.errors).toEqual([]);
  });
});

describe('connection caps count every socket (repro 2; MAX_CONNECTIONS_PER_USER=2, MAX_SUBSCRIPTIONS_PER_CONNECTION=1)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      env: { MAX_CONNECTIONS_PER_USER: '2', MAX_SUBSCRIPTIONS_PER_CONNECTION: '1' },
    });
  });
  afterAll(() => server.stop());

  it("counts sockets whose operations carry the user's token against the user's cap: the third one's operation gets LIMIT_EXCEEDED, a third connect 4420, and a place frees when one closes", async () => {
    const alice = await server.token('cap-alice');
    const bob = await server.token('cap-bob');
    const sockets: RawSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const raw = await openRawSocket(server.wsUrl);
      await raw.init();
      sockets.push(raw);
    }
    const [first, second, third] = sockets as [RawSocket, RawSocket, RawSocket];
    for (const raw of [first, second]) {
      expect((await ask(raw, 'q', VIEWER, withHeader(alice)))['payload']).toEqual({
        data: { viewer: { userId: 'cap-alice' } },
      });
    }
    const refused = await ask(third, 'q', VIEWER, withHeader(alice));
    expect(refused['type']).toBe('error');
    expect(messageErrors(refused).map(extensionsOf)).toEqual([
      { code: 'LIMIT_EXCEEDED', limit: 'connectionsPerUser', max: 2 },
    ]);
    expect((await connectWith(server, alice)).outcome).toEqual({
      code: 4420,
      reason: 'Too many connections: at most 2 per user',
    });

    // The refused socket still serves another user, for whom it now counts.
    expect((await ask(third, 'b', VIEWER, withHeader(bob)))['payload']).toEqual({
      data: { viewer: { userId: 'cap-bob' } },
    });
    // The per-connection subscription cap holds on a socket authorised per operation.
    const after = await lastEventCursor(server, alice);
    for (const id of ['s1', 's2']) {
      first.send({
        id,
        type: 'subscribe',
        payload: { query: COMPLETED, variables: { u: 'cap-alice', after }, extensions: withHeader(alice) },
      });
    }
    const tooMany = await first.next((m) => m['id'] === 's2' && m['type'] === 'error', 'the refusal of s2');
    expect(messageErrors(tooMany).map(extensionsOf)).toEqual([
      { code: 'LIMIT_EXCEEDED', limit: 'subscriptionsPerConnection', max: 1 },
    ]);

    first.socket.close(1000);
    await first.closed;
    // The server frees the place when it sees the close.
    await waitFor(async () => {
      const answer = await ask(third, `again-${Date.now()}`, VIEWER, withHeader(alice));
      return answer['type'] === 'next';
    }, 'a socket authorised per operation to be accepted again');
    for (const raw of [second, third]) raw.socket.close();
  });
});

describe('sockets without a token (repro 2; ANONYMOUS_SOCKET_GRACE_MS=500)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ env: { ANONYMOUS_SOCKET_GRACE_MS: '500' } });
  });
  afterAll(() => server.stop());

  it('closes a socket opened without a token that authenticates no operation within the grace with 4403, and keeps those that did', async () => {
    const token = await server.token('grace-user');
    const idle = await openRawSocket(server.wsUrl);
    await idle.init();
    let idleClosed: { code: number; reason: string } | undefined;
    void idle.closed.then((closed) => {
      idleClosed = closed;
    });
    // An operation without a token does not count as authenticating.
    expect(codes(await ask(idle, 'anon', VIEWER))).toEqual(['UNAUTHENTICATED']);
    const perOperation = await openRawSocket(server.wsUrl);
    await perOperation.init();
    expect((await ask(perOperation, 'q', VIEWER, withHeader(token)))['type']).toBe('next');
    const withToken = await openRawSocket(server.wsUrl);
    await withToken.init({ authorization: `Bearer ${token}` });

    await waitFor(() => idleClosed, 'the idle socket without a token to be closed', 10_000);
    expect(idleClosed).toEqual({
      code: 4403,
      reason: 'Forbidden: no token: authenticate within 500 ms of connecting',
    });
    for (const raw of [perOperation, withToken]) {
      expect(raw.socket.readyState).toBe(WebSocket.OPEN);
      expect((await ask(raw, 'later', VIEWER, withHeader(token)))['payload']).toEqual({
        data: { viewer: { userId: 'grace-user' } },
      });
      raw.socket.close();
    }
  });
});
