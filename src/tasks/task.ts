import { randomUUID } from 'node:crypto';

/** Lifecycle of a task. QUEUED -> RUNNING -> a final status; RUNNING may go back to QUEUED for a retry. */
export const TaskStatus = {
  Queued: 'QUEUED',
  Running: 'RUNNING',
  Succeeded: 'SUCCEEDED',
  Failed: 'FAILED',
  Cancelled: 'CANCELLED',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];
export const TASK_STATUSES: readonly TaskStatus[] = Object.values(TaskStatus);

const FINAL: ReadonlySet<TaskStatus> = new Set([
  TaskStatus.Succeeded,
  TaskStatus.Failed,
  TaskStatus.Cancelled,
]);

export function isFinal(status: TaskStatus): boolean {
  return FINAL.has(status);
}

/** JSON values as stored and returned by the `JSON` scalar. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface TaskFailureInfo {
  readonly code: string;
  readonly message: string;
}

/** A task as stored. Times are epoch milliseconds. */
export interface Task {
  readonly id: string;
  readonly userId: string;
  readonly kind: string;
  readonly status: TaskStatus;
  readonly input: Json;
  readonly result: Json | null;
  readonly error: TaskFailureInfo | null;
  readonly progress: number;
  readonly attempts: number;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  /** Earliest time a queued task may run (backoff between attempts). */
  readonly runAt: number;
  /** Run by another system through the service-role mutations, never by our runner. */
  readonly external: boolean;
  readonly idempotencyKey: string | null;
  /** Incremented by every transition; lets a live stream skip changes a snapshot already holds. */
  readonly version: number;
  /**
   * The trace this task belongs to, as an opaque W3C `traceparent`: set when the start was traced
   * (and sampled), absent otherwise. Travels with the task into jobs and published events.
   */
  readonly traceContext?: string;
}

/** One entry of a user's event log: the task as it was right after one transition. */
export interface TaskEvent {
  /** Opaque, strictly increasing within the user's log. */
  readonly cursor: string;
  readonly task: Task;
  /**
   * Epoch ms when the event was appended to the log, for the delivery-lag metric; internal, not in
   * the GraphQL contract. Absent on events read from logs written before it existed.
   */
  readonly appendedAt?: number;
}

/** What a caller decides about a new task; everything else starts the same for every task. */
export interface NewTask {
  readonly userId: string;
  readonly kind: string;
  readonly input: Json;
  readonly external: boolean;
  readonly idempotencyKey?: string | null;
  /** See {@link Task.traceContext}. */
  readonly traceContext?: string | undefined;
}

/** A task as it is first stored: a fresh id, QUEUED, version 1, due at `now`. */
export function newTask(
  { userId, kind, input, external, idempotencyKey = null, traceContext }: NewTask,
  now = Date.now(),
): Task {
  return {
    id: randomUUID(),
    userId,
    kind,
    status: TaskStatus.Queued,
    input,
    result: null,
    error: null,
    progress: 0,
    attempts: 0,
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    runAt: now,
    external,
    idempotencyKey,
    version: 1,
    ...(traceContext === undefined ? {} : { traceContext }),
  };
}
