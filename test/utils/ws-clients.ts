import { type Client, createClient } from 'graphql-ws';
import { afterAll } from 'vitest';
import WebSocket from 'ws';
import { createDeferred, waitFor } from './deferred.js';

const sockets = new Set<WebSocket>();
const clients = new Set<Client>();
afterAll(async () => {
  for (const socket of sockets) socket.terminate();
  await Promise.all([...clients].map((client) => client.dispose()));
});

/** A graphql-ws client for Node with the token in connectionParams; disposed after the file. */
export function createWsClient(
  url: string,
  token: string | null,
  options: Partial<Parameters<typeof createClient>[0]> = {},
) {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
    ...options,
  });
  clients.add(client);
  return client;
}

/** Collects every `next` payload of one subscription. */
export function collect<T>(client: Client, query: string, variables: Record<string, unknown> = {}) {
  const values: T[] = [];
  const errors: unknown[] = [];
  const done = createDeferred<void>();
  let completed = false;
  const unsubscribe = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors) errors.push(...result.errors);
        if (result.data) values.push(result.data as T);
      },
      error: (error) => {
        errors.push(error);
        completed = true;
        done.resolve();
      },
      complete: () => {
        completed = true;
        done.resolve();
      },
    },
  );
  return {
    values,
    errors,
    done: done.promise,
    get completed() {
      return completed;
    },
    unsubscribe,
    /** Waits until at least `count` values arrived. */
    until: (count: number, what = `${count} values`) => waitFor(() => values.length >= count && values, what),
  };
}

/** A raw WebSocket speaking graphql-transport-ws by hand, to test the protocol itself. */
export async function openRawSocket(
  url: string,
  protocol = 'graphql-transport-ws',
  headers: Record<string, string> = {},
) {
  const socket = new WebSocket(url, protocol, { headers });
  sockets.add(socket);
  const messages: Record<string, unknown>[] = [];
  const closed = createDeferred<{ code: number; reason: string }>();
  socket.on('message', (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
  socket.on('close', (code, reason) => closed.resolve({ code, reason: String(reason) }));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    messages,
    closed: closed.promise,
    send: (message: unknown) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    /** Waits for a message matching `predicate`. */
    next: (predicate: (message: Record<string, unknown>) => boolean, what = 'a message') =>
      waitFor(() => messages.find(predicate), what),
    /** Sends connection_init and waits for connection_ack. */
    async init(payload: Record<string, unknown> = {}) {
      socket.send(JSON.stringify({ type: 'connection_init', payload }));
      await waitFor(() => messages.find((m) => m['type'] === 'connection_ack'), 'connection_ack');
    },
  };
}
