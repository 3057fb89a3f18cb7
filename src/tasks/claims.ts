import type { KindRegistry } from './kind-registry.js';
import type { TaskChange } from './ports.js';
import { isFinal, type Task, type TaskFailureInfo, TaskStatus } from './task.js';
import * as transitions from './transitions.js';

/**
 * How a worker takes a task to run, whichever queue feeds it. A task found RUNNING by a worker
 * that did not start it was interrupted: the process that ran it died mid-attempt, so that attempt
 * is spent. It gets another attempt if its kind allows one, else it fails as INTERRUPTED. Both
 * backends must agree on this, or the same crash would end differently in each deployment.
 */

/** Attempts in all for `task`'s kind; a kind this server does not know gets one. */
function attemptsAllowed(kinds: KindRegistry, task: Task): number {
  return kinds.get(task.kind)?.attempts ?? 1;
}

/** The error of a task whose last attempt was interrupted. */
export function interruptedError(attempt: number, attempts: number): TaskFailureInfo {
  return {
    code: 'INTERRUPTED',
    message: `the process running it stopped during attempt ${attempt} of ${attempts}`,
  };
}

/**
 * Ends an interrupted attempt: `next` continues the task with the attempt `task.attempts` over
 * when another is allowed; otherwise the task fails as INTERRUPTED.
 */
function endInterrupted(
  kinds: KindRegistry,
  now: number,
  task: Task,
  next: (attempt: number) => TaskChange,
): Task | null {
  const attempts = attemptsAllowed(kinds, task);
  if (task.attempts < attempts) return next(task.attempts)(task);
  return transitions.fail(task.attempts, interruptedError(task.attempts, attempts), now)(task);
}

/** What a job of a shared queue says of the task it points at. */
export interface QueuedJob {
  /** The task as it was queued: the queued period (its version) this job stands for. */
  readonly queued: Task;
  /** The queue has handed this job out before (its worker died, or its processing failed). */
  readonly redelivered: boolean;
}

/**
 * What a worker of a shared queue does with a task a job points at: a QUEUED task is claimed as
 * its next attempt; a RUNNING one was interrupted (the job came back because its worker died), so
 * it is resumed directly as its next attempt, or fails as INTERRUPTED when none is left. External
 * and final tasks are not ours to run: `null`. The result is RUNNING exactly when the caller
 * should run it.
 *
 * With `job` (jobs of earlier versions carry no task), a job acts only on its own queued period:
 * a stale copy (a job of an earlier version of the task, queued again after that one ended) does
 * not claim a later QUEUED version — whose own job, due at its `runAt`, will — and a job handed
 * out for the first time resumes no run: a RUNNING task is then another job's run, alive or about
 * to come back with its own job. Only a redelivered job finds its run interrupted.
 */
export const claimForRun =
  (kinds: KindRegistry, now: number, job?: QueuedJob): TaskChange =>
  (task) => {
    if (task.external || isFinal(task.status)) return null;
    if (task.status === TaskStatus.Queued) {
      if (job && task.version !== job.queued.version) return null;
      return transitions.claim(now)(task);
    }
    if (job && !job.redelivered) return null;
    return endInterrupted(kinds, now, task, (attempt) => transitions.resume(attempt, now));
  };

/**
 * What a process starting up does with a task its own runner left RUNNING when it died: the task
 * goes back to the queue, due at `now`, for its next attempt, or fails as INTERRUPTED when none
 * is left. Anything else (not RUNNING, or external) is left as it is: `null`.
 */
export const recoverInterrupted =
  (kinds: KindRegistry, now: number): TaskChange =>
  (task) => {
    if (task.external || task.status !== TaskStatus.Running) return null;
    return endInterrupted(kinds, now, task, (attempt) => transitions.retry(attempt, now));
  };
