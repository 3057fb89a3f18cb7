import { useQuery } from '@urql/vue';
import { computed, type MaybeRefOrGetter, type Ref, toValue } from 'vue';
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
 * The caller (`viewer`), read with `@urql/vue`'s `useQuery` through the provided task client (whose
 * exchanges wait for the first token and refresh it after UNAUTHENTICATED). A read that failed
 * (e.g. the server was down) is sent again when the client's WebSocket next connects.
 */
export function useViewer(options: UseViewerOptions = {}): UseViewerResult {
  const client = useTaskClient();
  const query = useQuery({
    query: ViewerQuery,
    variables: {},
    pause: () => toValue(options.pause) === true,
  });
  const error = asTaskClientError(query.error);
  onConnected(client, () => {
    if (error.value !== null && toValue(options.pause) !== true) query.executeQuery();
  });
  return { viewer: computed(() => query.data.value?.viewer ?? null), error };
}
