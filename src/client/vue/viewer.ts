import { useQuery } from '@urql/vue';
import { computed, type MaybeRefOrGetter, type Ref, shallowRef, toValue } from 'vue';
import type { TaskClientError } from '../errors.js';
import type { ViewerQuery as ViewerData } from '../generated/graphql.js';
import { ViewerQuery } from '../operations.js';
import { onConnected } from './connection-state.js';
import { asTaskClientError } from './errors.js';
import { useTaskClient } from './provide.js';

/** The caller as the token says: its user id, roles, and the cursor of the newest event in its log. */
export type Viewer = NonNullable<ViewerData['viewer']>;

export interface UseViewerOptions {
  /** While true, the viewer is not read. */
  readonly pause?: MaybeRefOrGetter<boolean>;
}

export interface UseViewerResult {
  /** null until read (or when it could not be). */
  readonly viewer: Readonly<Ref<Viewer | null>>;
  /** Why it could not be read, if it could not. */
  readonly error: Readonly<Ref<TaskClientError | null>>;
}

/**
 * The caller (`viewer`), read with `@urql/vue`'s `useQuery` through the provided task client.
 *
 * The SDK's urql client sends the token it got last, and with `getToken` it first gets one when its
 * WebSocket connects: the query waits for the first `connected` state, and a query that failed (e.g.
 * UNAUTHENTICATED for a stale token, or the server down) is sent again after the next reconnect,
 * which brings a fresh token.
 */
export function useViewer(options: UseViewerOptions = {}): UseViewerResult {
  const client = useTaskClient();
  const hasToken = shallowRef(client.connectionState.get() === 'connected');
  const query = useQuery({
    query: ViewerQuery,
    variables: {},
    pause: () => !hasToken.value || toValue(options.pause) === true,
  });
  const error = asTaskClientError(query.error);
  onConnected(client, () => {
    if (!hasToken.value) hasToken.value = true;
    else if (error.value !== null && toValue(options.pause) !== true) query.executeQuery();
  });
  return { viewer: computed(() => query.data.value?.viewer ?? null), error };
}
