import { afterAll } from 'vitest';
import WebSocket from 'ws';
import {
  type ConnectionState,
  createTaskClient,
  type TaskClient,
  type TaskClientOptions,
  type TaskCompletedEvent,
} from '../../src/client/index.js';
import { waitFor } from './deferred.js';

const clients = new Set<TaskClient>();
afterAll(async () => {
  await Promise.all([...clients].map((client) => client.dispose()));
  clients.clear();
});

/**
 * The SDK for Node (`ws` as WebSocket) with quick reconnects, unless `options` say otherwise;
 * disposed after the file. Errors it recovers from are collected rather than printed.
 */
export function createTestTaskClient(options: TaskClientOptions): TaskClient & { errors: unknown[] } {
  const errors: unknown[] = [];
  const client = createTaskClient({
    webSocketImpl: WebSocket,
    retry: { minDelayMs: 50, maxDelayMs: 500 },
    onError: (error) => errors.push(error),
    ...options,
  });
  clients.add(client);
  return Object.assign(client, { errors });
}

/** Every connection state a client goes through from now on, in order. */
export function recordStates(client: TaskClient) {
  const states: ConnectionState[] = [client.connectionState.get()];
  client.connectionState.subscribe((state) => states.push(state));
  return {
    states,
    /** Waits for `state` to be reached after the first `from` recorded states. */
    reach: (state: ConnectionState, from = 0) =>
      waitFor(
        () => states.indexOf(state, from) >= 0 && states.indexOf(state, from),
        `connection state ${state}`,
      ),
  };
}

/** Everything one `onTaskCompleted` handler receives. */
export function recordCompletions(client: TaskClient) {
  const events: TaskCompletedEvent[] = [];
  const stop = client.onTaskCompleted((event) => events.push(event));
  return {
    events,
    stop,
    ids: () => events.map((event) => event.task.id),
    /** Waits until every id in `ids` has been delivered. */
    until: (ids: readonly string[], what = `${ids.length} completions`) =>
      waitFor(() => ids.every((id) => events.some((event) => event.task.id === id)) && events, what, 20_000),
  };
}
