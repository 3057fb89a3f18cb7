import { onScopeDispose, type Ref, shallowRef, watch } from 'vue';
import type { TaskClient } from '../task-client.js';
import type { ConnectionState } from '../types.js';
import { useTaskClient } from './provide.js';

/**
 * The state of the task client's WebSocket (`connecting`, `connected`, `reconnecting`, `offline`,
 * `failed`), kept current from `client.connectionState` until the calling scope is disposed.
 */
export function useConnectionState(): Readonly<Ref<ConnectionState>> {
  return connectionStateOf(useTaskClient());
}

/** {@link useConnectionState} for a given client. */
export function connectionStateOf(client: TaskClient): Readonly<Ref<ConnectionState>> {
  const state = shallowRef<ConnectionState>(client.connectionState.get());
  const stop = client.connectionState.subscribe((next) => {
    state.value = next;
  });
  onScopeDispose(stop);
  return state;
}

/**
 * Calls `callback` each time the client's WebSocket becomes `connected` (the first time and after
 * every reconnect), until the calling scope is disposed.
 */
export function onConnected(client: TaskClient, callback: () => void): void {
  const state = connectionStateOf(client);
  watch(state, (now, before) => {
    if (now === 'connected' && before !== 'connected') callback();
  });
}
