import type { Logger } from '../../logger.js';
import { type Task, TaskStatus } from '../../tasks/task.js';
import type { AbortCause } from '../../tasks/task-executor.js';
import type { RunningLeases } from './running-leases.js';

interface Run {
  readonly userId: string;
  readonly taskId: string;
  /** The attempt this worker runs: the stored task is still this run while its attempts match. */
  readonly attempt: number;
  readonly abort: AbortController;
}

/**
 * What the stored task says of a run: it goes on while the task is RUNNING as the same attempt.
 * A CANCELLED task is a cancellation whose message did not reach this worker; any other state
 * (another attempt, a final status, gone) means the run is not the task's any more, e.g. a
 * worker that lost its BullMQ lock while Redis was away and whose job another worker took over.
 */
function verdict(run: Run, stored: Task | null): 'continue' | 'cancelled' | 'superseded' {
  if (stored?.status === TaskStatus.Cancelled) return 'cancelled';
  if (stored?.status === TaskStatus.Running && stored.attempts === run.attempt) return 'continue';
  return 'superseded';
}

export interface WorkerRunsOptions {
  readonly leases: RunningLeases;
  readonly logger: Logger;
  /** How often the stored tasks of the runs are read (and the user leases renewed). */
  readonly checkEveryMs: number;
}

/**
 * The runs of one worker process. Cancellation arrives two ways: the pub/sub message (fast, but
 * lost when the worker's subscriber is reconnecting, or when it comes between the claim and
 * {@link add}) and a periodic read of every running task in the store, the durable mark: one
 * script per run, sent together, which also renews the run's user lease.
 */
export class WorkerRuns {
  readonly #runs = new Map<string, Run>();
  readonly #options: WorkerRunsOptions;
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(options: WorkerRunsOptions) {
    this.#options = options;
  }

  get size(): number {
    return this.#runs.size;
  }

  has(taskId: string): boolean {
    return this.#runs.has(taskId);
  }

  /** Registers the run of a claimed (RUNNING) task; returns the controller that aborts it. */
  add(task: Task): AbortController {
    const abort = new AbortController();
    this.#runs.set(task.id, { userId: task.userId, taskId: task.id, attempt: task.attempts, abort });
    return abort;
  }

  delete(taskId: string): void {
    this.#runs.delete(taskId);
  }

  abort(taskId: string, cause: AbortCause): void {
    this.#runs.get(taskId)?.abort.abort(cause);
  }

  abortAll(cause: AbortCause): void {
    for (const run of this.#runs.values()) run.abort.abort(cause);
  }

  /** Starts the periodic check. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.check(), this.#options.checkEveryMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Reads every running task once and aborts the runs the store no longer holds as running. */
  async check(): Promise<void> {
    if (this.#checking || this.#runs.size === 0) return;
    this.#checking = true;
    const { leases, logger } = this.#options;
    const runs = [...this.#runs.values()];
    try {
      const stored = await leases.check(runs);
      runs.forEach((run, i) => {
        if (run.abort.signal.aborted || this.#runs.get(run.taskId) !== run) return;
        const found = verdict(run, stored[i] ?? null);
        if (found === 'continue') return;
        logger.info(
          found === 'cancelled'
            ? 'task cancelled in the store; stopping its run'
            : 'task no longer held by this run in the store; stopping it',
          { taskId: run.taskId, attempt: run.attempt, status: stored[i]?.status ?? null },
        );
        // Either way the run writes nothing more: its attempt is not the stored one any more.
        run.abort.abort('cancelled' satisfies AbortCause);
      });
    } catch (err) {
      logger.warn('could not check the running tasks in the store', { err });
    } finally {
      this.#checking = false;
    }
  }
}
