import { useSubscription } from '@urql/vue';
import { computed, type MaybeRefOrGetter, type Ref, shallowRef, toValue, watch } from 'vue';
import type { TaskClientError } from '../errors.js';
import { TaskUpdatedSubscription } from '../operations.js';
import { isFinal, type Task } from '../types.js';
import { onConnected } from './connection-state.js';
import { asTaskClientError } from './errors.js';
import { useTaskClient } from './provide.js';

export interface UseTaskResult {
  /** The task's latest state (progress included); null until the first one arrives, and for a null id. */
  readonly task: Readonly<Ref<Task | null>>;
  /** Why the task cannot be followed, e.g. code NOT_FOUND or FORBIDDEN; null while all is well. */
  readonly error: Readonly<Ref<TaskClientError | null>>;
  /** Whether the task reached a final status (SUCCEEDED, FAILED, CANCELLED): no change follows. */
  readonly final: Readonly<Ref<boolean>>;
  /** Whether the subscription is running: false for a null id, once the task is final, or after an error. */
  readonly live: Readonly<Ref<boolean>>;
}

/**
 * The live state of task `id`, from a `taskUpdated` subscription (`@urql/vue`'s `useSubscription`
 * through the provided task client): the current state first, then every change, progress
 * included, until a final status.
 *
 * A new id (from a ref or getter) starts over with that task; null pauses. A connection lost
 * meanwhile is the client's business: graphql-ws sends the subscription again on the new socket,
 * where the server answers with the current state first, so nothing is missed. Should the
 * subscription have ended without a final status (an error, a socket graphql-ws gave up on), it is
 * sent again each time the client reconnects.
 */
export function useTask(id: MaybeRefOrGetter<string | null>): UseTaskResult {
  const client = useTaskClient();
  const currentId = computed(() => toValue(id));
  const task = shallowRef<Task | null>(null);
  // Synchronously: a state of the previous task must not show for the new id.
  watch(
    currentId,
    () => {
      task.value = null;
    },
    { flush: 'sync' },
  );

  const subscription = useSubscription(
    {
      query: TaskUpdatedSubscription,
      variables: () => ({ id: currentId.value ?? '' }),
      pause: () => currentId.value === null,
    },
    // Called for every result (not once per tick, as a watcher of `data` would be).
    (_previous: undefined, data): undefined => {
      const next = data.taskUpdated;
      if (next.id !== currentId.value) return;
      const known = task.value;
      // A final state is never replaced by an earlier one.
      if (known?.id === next.id && isFinal(known.status) && !isFinal(next.status)) return;
      task.value = next;
    },
  );

  const final = computed(() => task.value !== null && isFinal(task.value.status));
  onConnected(client, () => {
    if (currentId.value !== null && !final.value && !subscription.fetching.value) {
      subscription.executeSubscription();
    }
  });

  const subscriptionError = asTaskClientError(subscription.error);
  return {
    task,
    // Only the current task's: an error of the previous id's subscription is not this one's.
    error: computed(() =>
      subscription.operation.value?.variables.id === currentId.value ? subscriptionError.value : null,
    ),
    final,
    live: computed(() => currentId.value !== null && subscription.fetching.value),
  };
}
