import type { TaskChange } from './ports.js';
import { isFinal, type Json, type Task, type TaskFailureInfo, TaskStatus } from './task.js';

/**
 * The only ways a task changes. Each returns a {@link TaskChange} that yields `null` (no change)
 * when the task is no longer in a state the change applies to, so a late or repeated writer,
 * e.g. a worker finishing a task that was cancelled meanwhile, changes nothing.
 */

/** QUEUED -> RUNNING, one more attempt. */
export const claim =
  (now: number): TaskChange =>
  (task) =>
    task.status === TaskStatus.Queued
      ? {
          ...task,
          status: TaskStatus.Running,
          attempts: task.attempts + 1,
          startedAt: now,
          progress: 0,
          error: null,
        }
      : null;

/** Whether `task` is still the run identified by `attempt`. */
const isRun = (task: Task, attempt: number) =>
  task.status === TaskStatus.Running && task.attempts === attempt;

export const reportProgress =
  (attempt: number, progress: number): TaskChange =>
  (task) =>
    isRun(task, attempt) && task.progress !== progress ? { ...task, progress } : null;

export const succeed =
  (attempt: number, result: Json, now: number): TaskChange =>
  (task) =>
    isRun(task, attempt)
      ? { ...task, status: TaskStatus.Succeeded, result, progress: 1, finishedAt: now, error: null }
      : null;

export const fail =
  (attempt: number, error: TaskFailureInfo, now: number): TaskChange =>
  (task) =>
    isRun(task, attempt) ? { ...task, status: TaskStatus.Failed, error, finishedAt: now } : null;

/** RUNNING -> QUEUED for another attempt at `runAt`. */
export const retry =
  (attempt: number, runAt: number): TaskChange =>
  (task) =>
    isRun(task, attempt) ? { ...task, status: TaskStatus.Queued, runAt, progress: 0, startedAt: null } : null;

/**
 * RUNNING -> RUNNING as the next attempt, for a worker that takes over a run whose worker died
 * (no trip through QUEUED, since the taking worker runs it at once).
 */
export const resume =
  (attempt: number, now: number): TaskChange =>
  (task) =>
    isRun(task, attempt)
      ? { ...task, attempts: attempt + 1, startedAt: now, progress: 0, error: null }
      : null;

/** RUNNING -> QUEUED without spending the attempt: the worker is shutting down. */
export const handBack =
  (attempt: number, now: number): TaskChange =>
  (task) =>
    isRun(task, attempt)
      ? {
          ...task,
          status: TaskStatus.Queued,
          attempts: attempt - 1,
          runAt: now,
          progress: 0,
          startedAt: null,
        }
      : null;

export const cancel =
  (error: TaskFailureInfo, now: number): TaskChange =>
  (task) =>
    isFinal(task.status) ? null : { ...task, status: TaskStatus.Cancelled, error, finishedAt: now };

/** Service-role reports for external kinds: QUEUED or RUNNING, never final. */
export const externalProgress =
  (progress: number, now: number): TaskChange =>
  (task) => {
    if (isFinal(task.status)) return null;
    if (task.status === TaskStatus.Queued) {
      return { ...task, status: TaskStatus.Running, attempts: task.attempts + 1, startedAt: now, progress };
    }
    return task.progress === progress ? null : { ...task, progress };
  };

export const externalFinish =
  (outcome: { result: Json } | { error: TaskFailureInfo }, now: number): TaskChange =>
  (task) => {
    if (isFinal(task.status)) return null;
    const started = {
      attempts: Math.max(task.attempts, 1),
      startedAt: task.startedAt ?? now,
      finishedAt: now,
    };
    return 'result' in outcome
      ? {
          ...task,
          ...started,
          status: TaskStatus.Succeeded,
          result: outcome.result,
          progress: 1,
          error: null,
        }
      : { ...task, ...started, status: TaskStatus.Failed, error: outcome.error };
  };
