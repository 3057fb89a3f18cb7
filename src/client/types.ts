import type {
  StartTaskInput as GeneratedStartTaskInput,
  TaskStatus as GeneratedTaskStatus,
  TaskFieldsFragment,
  TaskKindsQuery,
} from './generated/graphql.js';

/** A task with every field of the schema's `Task`. */
export type Task = TaskFieldsFragment;
export type TaskStatus = GeneratedTaskStatus;
export type StartTaskInput = GeneratedStartTaskInput;
/** Why one input of `startTasks` started no task: what `startTask` would have rejected it with. */
export interface StartTaskError {
  /**
   * The `extensions.code` `startTask` would have given: `BAD_USER_INPUT` (unknown kind, input
   * failing the kind's schema, a bad `userId` or `idempotencyKey`), `FORBIDDEN` (a user starting
   * for another user), `RATE_LIMITED`, `CONFLICT` (an idempotency key used with another input).
   */
  readonly code: string;
  readonly message: string;
  /** `BAD_USER_INPUT`: the argument to fix, e.g. `kind` or `input.ms`. */
  readonly field?: string;
  /** `CONFLICT`: the task that already holds the idempotency key. */
  readonly taskId?: string;
  /** `RATE_LIMITED`: seconds until a retry can succeed. */
  readonly retryAfter?: number;
}
/** One input's outcome of `startTasks`: its task, or why it started none. */
export type StartTaskResult =
  | { readonly task: Task; readonly error?: never }
  | { readonly task?: never; readonly error: StartTaskError };
/** A kind of task the service can start, with the JSON Schema of its input. */
export type TaskKind = TaskKindsQuery['taskKinds'][number];

/** Statuses a task never leaves. */
export const FINAL_STATUSES: readonly TaskStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED'];

export function isFinal(status: TaskStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/**
 * - `connecting`: the first connection is being made.
 * - `connected`: the WebSocket is acknowledged; completions flow.
 * - `reconnecting`: the connection was lost (or never made); retrying with backoff.
 * - `offline`: the browser says it is offline (retries wait for it to come back), or the client is disposed.
 * - `failed`: `retry.maxAttempts` connection attempts in a row failed; terminal, no further attempt is made
 *   (create a new client to try again).
 */
export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline' | 'failed';

/** One completion handed to `onTaskCompleted` handlers. */
export interface TaskCompletedEvent {
  /** The task in its final status. */
  readonly task: Task;
  /**
   * Where the feed resumes after this event. Unique per event from the live feed; events recovered by a
   * reconciliation after `CURSOR_EXPIRED` share the cursor the feed resumed from.
   */
  readonly cursor: string;
  /** `true` when recovered after a gap (replayed from the log, or reconciled), `false` when live. */
  readonly replayed: boolean;
}

/** Where the SDK keeps the last delivered cursor of each followed user. */
export interface CursorStore {
  get(userId: string): string | null | Promise<string | null>;
  set(userId: string, cursor: string): void | Promise<void>;
}
