import { provideClient } from '@urql/vue';
import {
  type ComponentInternalInstance,
  getCurrentInstance,
  hasInjectionContext,
  type InjectionKey,
  inject,
  onScopeDispose,
  provide,
} from 'vue';
import { createTaskClient, type TaskClient, type TaskClientOptions } from '../task-client.js';

/** Where {@link provideTaskClient} provides the client (`inject(TASK_CLIENT_KEY)` finds it too). */
export const TASK_CLIENT_KEY: InjectionKey<TaskClient> = Symbol('@task-status/client');

/**
 * The client each component provided itself: Vue's `inject` only sees what ancestors provide, so a
 * component that calls {@link provideTaskClient} and then a composable in the same `setup()` finds
 * it here (as `@urql/vue` does for `provideClient`).
 */
const providedBy = new WeakMap<ComponentInternalInstance, TaskClient>();

function isTaskClient(value: TaskClientOptions | TaskClient): value is TaskClient {
  return 'urql' in value && typeof (value as Partial<TaskClient>).dispose === 'function';
}

/**
 * Makes a task client available to this component and its descendants: {@link useTaskClient} and
 * the other composables use it, and so do plain `@urql/vue` `useQuery`/`useSubscription` calls (it
 * calls `provideClient(client.urql)`, so they share the client's token, connection and exchanges).
 *
 * Given options, it creates the client and disposes it when the component (or effect scope) is
 * disposed: give the component a `:key` per user to get a fresh client when the user changes.
 * Given a client, it provides it as it is and leaves its disposal to the caller.
 *
 * Call it in a component's `setup()`.
 *
 * @example
 * ```ts
 * const client = provideTaskClient({ url: '/graphql', getToken, cursorStore: createLocalStorageCursorStore() });
 * ```
 */
export function provideTaskClient(options: TaskClientOptions | TaskClient): TaskClient {
  const instance = getCurrentInstance();
  if (!instance) throw new Error("provideTaskClient() must be called in a component's setup()");
  const created = !isTaskClient(options);
  const client = isTaskClient(options) ? options : createTaskClient(options);
  provide(TASK_CLIENT_KEY, client);
  provideClient(client.urql);
  providedBy.set(instance, client);
  if (created) {
    onScopeDispose(() => {
      providedBy.delete(instance);
      // dispose() closes the socket and rejects pending waits; it has nothing left to report.
      void client.dispose().catch(() => undefined);
    });
  }
  return client;
}

/**
 * The task client {@link provideTaskClient} made available to this component (by itself or an
 * ancestor). Throws when there is none. Call it in `setup()` (or another injection context).
 */
export function useTaskClient(): TaskClient {
  const instance = getCurrentInstance();
  const client =
    (instance ? providedBy.get(instance) : undefined) ??
    (hasInjectionContext() ? inject(TASK_CLIENT_KEY, null) : null);
  if (!client) {
    throw new Error(
      'useTaskClient(): no task client here: call provideTaskClient() in this component or an ancestor, ' +
        'and call the composables in setup()',
    );
  }
  return client;
}
