import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from './utils/deferred.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { collect, createWsClient, openRawSocket } from './utils/ws-clients.js';

interface CompletedData {
  taskCompleted: { cursor: string; task: { id: string; status: string } };
}
const COMPLETED =
  'subscription($u: ID!, $after: String) { taskCompleted(userId: $u, after: $after) { cursor task { id status } } }';

describe('heartbeat (KEEPALIVE_MS=200, CONNECTION_INIT_TIMEOUT_MS=300)', () => {
  let server: TestServer;
  const mine = new Set<WebSocket>();
  beforeAll(async () => {
    server = await startTestServer({ env: { KEEPALIVE_MS: '200', CONNECTION_INIT_TIMEOUT_MS: '300' } });
  });
  afterAll(async () => {
    for (const socket of mine) socket.terminate();
    await server.stop();
  });

  async function startEcho(token: string, value: string): Promise<string> {
    const started = await server.gql<{ startTask: { id: string } }>(
      'mutation($v: JSON) { startTask(input: { kind: "echo", input: { value: $v } }) { id } }',
      { v: value },
      token,
    );
    expect(started.errors).toBeUndefined();
    const id = started.data?.startTask.id;
    if (!id) throw new Error('no task id');
    return id;
  }

  async function lastEventCursor(token: string): Promise<string | null> {
    const response = await server.gql<{ viewer: { lastEventCursor: string | null } }>(
      'query { viewer { lastEventCursor } }',
      {},
      token,
    );
    expect(response.errors).toBeUndefined();
    return response.data?.viewer.lastEventCursor ?? null;
  }

  it('terminates a peer that never answers pings while a responsive client on the same server keeps receiving completions', async () => {
    const token = await server.token('heartbeat-user');
    await startEcho(token, 'history');
    const after = await waitFor(() => lastEventCursor(token).then((c) => c ?? undefined), 'a first event');

    // A well-behaved graphql-ws client, subscribed for the whole test.
    const closes: number[] = [];
    const client = createWsClient(server.wsUrl, token, {
      on: { closed: (event) => closes.push((event as WebSocket.CloseEvent).code) },
    });
    const sub = collect<CompletedData>(client, COMPLETED, { u: 'heartbeat-user', after });
    const before = await startEcho(token, 'before');
    await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === before), 'a completion before');

    // A raw peer that initialises properly but never sends a pong.
    const silent = new WebSocket(server.wsUrl, 'graphql-transport-ws', { autoPong: false });
    mine.add(silent);
    let pings = 0;
    silent.on('ping', () => pings++);
    let closedWith: number | undefined;
    silent.on('close', (code) => {
      closedWith = code;
    });
    await new Promise<void>((resolve, reject) => {
      silent.once('open', () => resolve());
      silent.once('error', reject);
    });
    let acked = false;
    silent.on('message', (data) => {
      if ((JSON.parse(String(data)) as { type?: string }).type === 'connection_ack') acked = true;
    });
    silent.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await waitFor(() => acked, 'connection_ack');

    // Terminated, not closed: no close frame, so the peer sees an abnormal closure.
    expect(await waitFor(() => closedWith, 'the silent peer to be dropped')).toBe(1006);
    expect(pings).toBeGreaterThanOrEqual(1);

    const afterDrop = await startEcho(token, 'after');
    await waitFor(() => sub.values.some((v) => v.taskCompleted.task.id === afterDrop), 'a completion after');
    expect(sub.values.map((v) => v.taskCompleted.task.id).slice(-2)).toEqual([before, afterDrop]);
    expect(sub.errors).toEqual([]);
    expect(sub.completed).toBe(false);
    expect(closes).toEqual([]);
  });

  it('closes a socket that never sends connection_init with 4408', async () => {
    const raw = await openRawSocket(server.wsUrl);
    let code: number | undefined;
    void raw.closed.then((closed) => {
      code = closed.code;
    });
    expect(await waitFor(() => code, 'the server to close the socket')).toBe(4408);
    expect(raw.messages).toEqual([]);
  });

  it('keeps a connection that answers pings open across several ping intervals', async () => {
    const token = await server.token('heartbeat-steady');
    const raw = await openRawSocket(server.wsUrl);
    let pings = 0;
    raw.socket.on('ping', () => pings++);
    await raw.init({ authorization: `Bearer ${token}` });
    await waitFor(() => pings >= 3, 'three pings');
    expect(raw.socket.readyState).toBe(WebSocket.OPEN);
    // Still serving operations after the pings.
    raw.send({ id: 'q', type: 'subscribe', payload: { query: 'query { viewer { userId } }' } });
    const result = await raw.next((m) => m['id'] === 'q' && m['type'] === 'next', 'the query result');
    expect(result['payload']).toEqual({ data: { viewer: { userId: 'heartbeat-steady' } } });
    raw.socket.close(1000);
    expect((await raw.closed).code).toBe(1000);
  });
});
