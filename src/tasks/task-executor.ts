import type { Logger } from '../logger.js';
import type { KindRegistry } from './kind-registry.js';
import { retryDelay, TaskFailure } from './kinds/kind.js';
import type { TaskRepository } from './ports.js';
import type { Task, TaskFailureInfo } from './task.js';
import { taskTracer } from './task-tracing.js';
import * as transitions from './transitions.js';

/** Progress is written at most this often per task; the last value is always written. */
const PROGRESS_INTERVAL_MS = 100;

/** Why a run's signal was aborted. */
export type AbortCause = 'cancelled' | 'timeout' | 'shutdown';

export interface ExecutorDeps {
  readonly repository: TaskRepository;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  readonly now?: () => number;
  /**
   * Told once the handler has settled (or could not start), before the outcome is written: the
   * worker may start another task in its place while the write is on its way.
   */
  readonly onSettled?: () => void;
  /** When the task was queued for this attempt (epoch ms), for its trace. @default task.runAt */
  readonly queuedAt?: number;
}

/** What happened to a run, for the worker that drives it. */
export type RunOutcome =
  | { readonly type: 'succeeded' | 'failed' | 'handed-back' | 'cancelled' }
  | { readonly type: 'retry'; readonly task: Task };

/**
 * Runs one claimed (RUNNING) task to its outcome and writes that outcome: success, failure, a
 * retry after backoff, or a hand-back when the worker stops. `abort` lets the owner cancel it.
 */
export function executeTask(task: Task, abort: AbortController, deps: ExecutorDeps): Promise<RunOutcome> {
  return taskTracer().runTask(task, deps.queuedAt ?? task.runAt, abort.signal, () =>
    runAttempt(task, abort, deps),
  );
}

async function runAttempt(
  task: Task,
  abort: AbortController,
  { repository, kinds, logger, now = Date.now, onSettled }: ExecutorDeps,
): Promise<RunOutcome> {
  const attempt = task.attempts;
  /** The task as this run last wrote it: each write hands it to the store, which may then skip a read. */
  let seen = task;
  const kind = kinds.get(task.kind);
  if (!kind?.handler) {
    onSettled?.();
    await repository.transition(
      task.id,
      transitions.fail(
        attempt,
        { code: 'UNKNOWN_KIND', message: `no handler for task kind ${task.kind}` },
        now(),
      ),
    );
    return { type: 'failed' };
  }

  const timeout = setTimeout(() => abort.abort('timeout' satisfies AbortCause), kind.timeoutMs);
  let progressTimer: NodeJS.Timeout | undefined;
  let pendingProgress: number | undefined;
  let lastProgressWrite = 0;
  let progressWrites = Promise.resolve();
  const writeProgress = (progress: number) => {
    pendingProgress = undefined;
    lastProgressWrite = now();
    progressWrites = progressWrites
      .then(() => repository.transition(task.id, transitions.reportProgress(attempt, progress), seen))
      .then(
        (event) => {
          if (event) seen = event.task;
        },
        (err: unknown) => logger.warn('progress write failed', { taskId: task.id, err }),
      );
  };
  const reportProgress = (value: number) => {
    if (abort.signal.aborted || !Number.isFinite(value)) return;
    const progress = Math.min(1, Math.max(0, value));
    clearTimeout(progressTimer);
    const wait = lastProgressWrite + PROGRESS_INTERVAL_MS - now();
    if (wait <= 0) writeProgress(progress);
    else {
      pendingProgress = progress;
      progressTimer = setTimeout(() => writeProgress(progress), wait);
    }
  };

  // Settles when the run is aborted, so a handler that ignores its signal cannot hold the run
  // (and its worker slot) past a timeout, a cancellation or a shutdown.
  const aborted = new Promise<never>((_resolve, reject) => {
    if (abort.signal.aborted) reject(abort.signal.reason);
    else abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
  });
  aborted.catch(() => {});
  let outcome: { result: unknown } | { error: unknown };
  try {
    abort.signal.throwIfAborted();
    const handled = kind.handler(task.input, {
      signal: abort.signal,
      reportProgress,
      attempt,
      taskId: task.id,
      userId: task.userId,
    });
    handled.catch(() => {});
    const result = await Promise.race([handled, aborted]);
    abort.signal.throwIfAborted();
    outcome = { result };
  } catch (error) {
    outcome = { error };
  } finally {
    clearTimeout(timeout);
    clearTimeout(progressTimer);
    onSettled?.();
  }
  // The last value reported lands before the outcome, whatever the throttle held back.
  if (pendingProgress !== undefined && !abort.signal.aborted) writeProgress(pendingProgress);
  await progressWrites;

  if ('result' in outcome) {
    const written = await repository.transition(
      task.id,
      transitions.succeed(attempt, (outcome.result ?? null) as Task['result'], now()),
      seen,
    );
    return { type: written ? 'succeeded' : 'cancelled' };
  }

  const cause = abort.signal.aborted ? (abort.signal.reason as AbortCause) : undefined;
  if (cause === 'cancelled') return { type: 'cancelled' };
  if (cause === 'shutdown') {
    await repository.transition(task.id, transitions.handBack(attempt, now()), seen);
    return { type: 'handed-back' };
  }
  const failure = describeFailure(outcome.error, cause, kind.timeoutMs);
  const retryable = !(outcome.error instanceof TaskFailure) || outcome.error.retryable;
  if (retryable && attempt < kind.attempts) {
    const runAt = now() + retryDelay(kind.backoff, attempt);
    logger.info('task attempt failed; retrying', { taskId: task.id, attempt, code: failure.code, runAt });
    const event = await repository.transition(task.id, transitions.retry(attempt, runAt), seen);
    return event ? { type: 'retry', task: event.task } : { type: 'cancelled' };
  }
  logger.info('task failed', { taskId: task.id, attempt, code: failure.code });
  const written = await repository.transition(task.id, transitions.fail(attempt, failure, now()), seen);
  return { type: written ? 'failed' : 'cancelled' };
}

function describeFailure(error: unknown, cause: AbortCause | undefined, timeoutMs: number): TaskFailureInfo {
  if (cause === 'timeout') return { code: 'TIMEOUT', message: `attempt timed out after ${timeoutMs} ms` };
  if (error instanceof TaskFailure) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: 'HANDLER_ERROR', message: error.message };
  return { code: 'HANDLER_ERROR', message: String(error) };
}
