import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { freePort } from '../../scripts/lib/local.js';
import { TaskClientError } from '../../src/client/index.js';
import { waitFor } from '../utils/deferred.js';
import { recordStates, createTestTaskClient as taskClient } from '../utils/task-clients.js';
import { startTestServer, type TestServer } from '../utils/tserver.js';

/** `ws`'s WebSocket, counting the sockets the SDK opens and sending each where `route` says. */
function countingSockets(route: (attempt: number, url: string) => string = (_attempt, url) => url) {
  const opened: WebSocket[] = [];
  class CountingWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(route(opened.length + 1, url), protocols);
      opened.push(this);
    }
  }
  return { opened, CountingWebSocket };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('task client retry.maxAttempts', () => {
  let server: TestServer;
  let deadUrl: string;
  beforeAll(async () => {
    server = await startTestServer();
    deadUrl = `http://127.0.0.1:${await freePort()}/graphql`;
  });
  afterAll(() => server.stop());

  it('should give up after maxAttempts attempts where nothing listens: state failed, the callback once, waits rejected, no further attempt', async () => {
    const { opened, CountingWebSocket } = countingSockets();
    const failures: TaskClientError[] = [];
    const client = taskClient({
      url: deadUrl,
      token: 'unused',
      webSocketImpl: CountingWebSocket,
      retry: { minDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 },
      onConnectionFailed: (error) => failures.push(error),
    });
    const states = recordStates(client);
    const waiting = client.waitForTask('any-task').catch((error: unknown) => error);

    await states.reach('failed');
    expect(client.connectionState.get()).toBe('failed');
    expect(opened).toHaveLength(3);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toBeInstanceOf(TaskClientError);
    expect(failures[0]?.message).toMatch(/3 times in a row.*retry\.maxAttempts/);
    expect(client.errors).toContain(failures[0]);

    const rejection = await waiting;
    expect(rejection).toBe(failures[0]);
    // A wait begun after the failure rejects at once with the same error.
    await expect(client.waitForTask('another-task')).rejects.toBe(failures[0]);

    // Many retry delays later, still no further socket and still failed.
    await sleep(300);
    expect(opened).toHaveLength(3);
    expect(states.states.at(-1)).toBe('failed');
    await client.dispose();
    expect(client.connectionState.get()).toBe('failed');
    expect(failures).toHaveLength(1);
  });

  it('should count attempts a server refuses (a token it rejects) as failed', async () => {
    const { opened, CountingWebSocket } = countingSockets();
    const client = taskClient({
      url: server.url,
      token: 'not-a-valid-token',
      webSocketImpl: CountingWebSocket,
      retry: { minDelayMs: 5, maxDelayMs: 20, maxAttempts: 2 },
    });
    const states = recordStates(client);
    const waiting = client.waitForTask('any-task').catch((error: unknown) => error);

    await states.reach('failed');
    expect(opened).toHaveLength(2);
    expect(states.states).not.toContain('connected');
    expect(await waiting).toBeInstanceOf(TaskClientError);
  });

  it('should start counting afresh after a successful connection', async () => {
    // Attempts 1 and 2 go where nothing listens, 3 reaches the server (and is then cut), 4 on fail.
    const { opened, CountingWebSocket } = countingSockets((attempt, url) =>
      attempt === 3 ? url : deadUrl.replace(/^http/, 'ws'),
    );
    const client = taskClient({
      url: server.url,
      token: await server.token('retry-limit-reset'),
      webSocketImpl: CountingWebSocket,
      retry: { minDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 },
    });
    const states = recordStates(client);

    await states.reach('connected');
    expect(opened).toHaveLength(3);
    opened[2]?.terminate();

    await states.reach('failed');
    // Had the two failures before the connection still counted, the first failure after it would end it.
    expect(opened).toHaveLength(6);
  });

  it('should retry without limit by default', async () => {
    const { opened, CountingWebSocket } = countingSockets();
    const client = taskClient({
      url: deadUrl,
      token: 'unused',
      webSocketImpl: CountingWebSocket,
      retry: { minDelayMs: 5, maxDelayMs: 10 },
    });
    const states = recordStates(client);
    await waitFor(() => opened.length >= 12, '12 attempts');
    expect(states.states).not.toContain('failed');
    await client.dispose();
  });

  it('should refuse a maxAttempts below 1', () => {
    expect(() => taskClient({ url: deadUrl, retry: { maxAttempts: 0 } })).toThrow(RangeError);
  });
});
