/**
 * Vue 3 composables for the task client SDK (`@task-status/client/vue`): provide a client to a
 * component subtree, then follow its connection, a task's live state and a user's completions.
 * Built on `@urql/vue`, so plain `useQuery`/`useSubscription` below the provider use the same client.
 */
export { useConnectionState } from './connection-state.js';
export { provideTaskClient, TASK_CLIENT_KEY, useTaskClient } from './provide.js';
export {
  DEFAULT_COMPLETIONS_LIMIT,
  type UseTaskCompletionsOptions,
  type UseTaskCompletionsResult,
  useTaskCompletions,
} from './task-completions.js';
export { type UseTaskResult, useTask } from './use-task.js';
export { type UseViewerOptions, type UseViewerResult, useViewer, type Viewer } from './viewer.js';
