/**
 * Typed client SDK of the task status service: queries and mutations over HTTP, completions over
 * graphql-ws, resumed from the last cursor across reconnects and server restarts.
 */
export { createLocalStorageCursorStore, createMemoryCursorStore, type StorageLike } from './cursor-store.js';
export { type ServerError, TaskClientError } from './errors.js';
export {
  type ResumableSubscriptionsOptions,
  resumableSubscriptionsExchange,
} from './resumable-subscriptions.js';
export { createTaskClient, type TaskClient, type TaskClientOptions } from './task-client.js';
export type { TaskOperations, TaskPage } from './task-requests.js';
export {
  type ConnectionState,
  type CursorStore,
  FINAL_STATUSES,
  isFinal,
  type StartTaskError,
  type StartTaskInput,
  type StartTaskResult,
  type Task,
  type TaskCompletedEvent,
  type TaskKind,
  type TaskStatus,
} from './types.js';
