import { useSubscription } from '@urql/vue';
import { computed, type MaybeRefOrGetter, type Ref, shallowRef, toValue, watch } from 'vue';
import type { TaskClientError } from '../errors.js';
import { TaskCompletedSubscription } from '../operations.js';
import type { TaskCompletedEvent } from '../types.js';
import { onConnected } from './connection-state.js';
import { asTaskClientError } from './errors.js';
import { useTaskClient } from './provide.js';
import { useViewer } from './viewer.js';

/** How many events {@link useTaskCompletions} keeps by default. */
export const DEFAULT_COMPLETIONS_LIMIT = 1_000;

export interface UseTaskCompletionsOptions {
  /**
   * Whose completions to follow (a service token may follow anyone). A new value starts over with
   * that user; `undefined` follows the token's user.
   * @default the viewer's `userId`
   */
  readonly userId?: MaybeRefOrGetter<string | undefined>;
  /** Called once for each completion, in order, as it is added to `events`. */
  readonly onCompleted?: (event: TaskCompletedEvent) => void;
  /**
   * How many of the newest events `events` keeps (older ones drop out; `onCompleted` still sees
   * every one). @default 1000
   */
  readonly limit?: number;
}

export interface UseTaskCompletionsResult {
  /** The followed user's completions, oldest first, each task once. */
  readonly events: Readonly<Ref<readonly TaskCompletedEvent[]>>;
  /** Whose completions are followed: null until known (the viewer is being read). */
  readonly userId: Readonly<Ref<string | null>>;
  /**
   * True once the subscription is sent. Following the viewer, no completion of a task started from
   * then on is missed (the subscription starts after the viewer's `lastEventCursor`, read before).
   */
  readonly following: Readonly<Ref<boolean>>;
  /** Why the viewer could not be read or the subscription failed (e.g. FORBIDDEN, CURSOR_EXPIRED). */
  readonly error: Readonly<Ref<TaskClientError | null>>;
}

interface Variables {
  readonly userId: string;
  readonly after: string | null;
}

/**
 * The completions of a user's tasks, from a `taskCompleted` subscription (`@urql/vue`'s
 * `useSubscription` through the provided task client), accumulated oldest first.
 *
 * Following the viewer (no `userId`), the subscription starts after the viewer's `lastEventCursor`,
 * so a task started once `following` is true cannot slip between reading the viewer and
 * subscribing; with a `userId` it starts live (`after: null`). The task client's urql exchanges
 * resume it from the cursor store instead whenever there is a stored cursor, and on every
 * resubscription after a reconnect, drop events already delivered, and send the subscription again
 * after an error; should it end anyway, it is sent again each time the client reconnects.
 */
export function useTaskCompletions(options: UseTaskCompletionsOptions = {}): UseTaskCompletionsResult {
  const client = useTaskClient();
  const limit = options.limit ?? DEFAULT_COMPLETIONS_LIMIT;
  if (!(limit >= 1)) throw new RangeError('limit must be at least 1');
  const explicitUserId = () => toValue(options.userId);
  const { viewer, error: viewerError } = useViewer({ pause: () => explicitUserId() !== undefined });

  const events = shallowRef<readonly TaskCompletedEvent[]>([]);

  /** Fixed per followed user: a re-read viewer must not restart the subscription with a later cursor. */
  const variables = shallowRef<Variables | null>(null);
  watch(
    [explicitUserId, viewer],
    ([given, reader]) => {
      const userId = given ?? reader?.userId ?? null;
      if (userId === variables.value?.userId) return;
      events.value = [];
      variables.value =
        userId === null
          ? null
          : { userId, after: given === undefined ? (reader?.lastEventCursor ?? null) : null };
    },
    { immediate: true, flush: 'sync' },
  );

  /** Duplicates never get here: the client's `resumableSubscriptionsExchange` drops them. */
  function accept(event: TaskCompletedEvent): void {
    const kept =
      events.value.length >= limit ? events.value.slice(events.value.length - limit + 1) : events.value;
    events.value = [...kept, event];
    options.onCompleted?.(event);
  }

  const subscription = useSubscription(
    {
      query: TaskCompletedSubscription,
      variables: () => variables.value ?? { userId: '', after: null },
      pause: () => variables.value === null,
    },
    // Called for every result (not once per tick, as a watcher of `data` would be).
    (_previous: undefined, data): undefined => {
      const current = variables.value;
      if (current !== null && data.taskCompleted.task.userId === current.userId) accept(data.taskCompleted);
    },
  );

  onConnected(client, () => {
    if (variables.value !== null && !subscription.fetching.value) subscription.executeSubscription();
  });

  const subscriptionError = asTaskClientError(subscription.error);
  return {
    events,
    userId: computed(() => variables.value?.userId ?? null),
    following: computed(() => variables.value !== null),
    error: computed(
      () => subscriptionError.value ?? (explicitUserId() === undefined ? viewerError.value : null),
    ),
  };
}
