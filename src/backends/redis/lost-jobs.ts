import type { Logger } from '../../logger.js';

/**
 * A job a worker no longer holds. While Redis is unreachable a worker cannot renew its lock on
 * the jobs it runs; once the lock has run out, BullMQ's stalled-job check (in any worker, after
 * Redis is back) moves the job back to wait, and a worker takes it again. That second delivery
 * goes through the task store like any other: it finds the task final (nothing to do: the job is
 * completed and removed) or still RUNNING (then it resumes it as the next attempt, and the first
 * run, seeing that in the store, stops without writing). When the first worker's run then ends,
 * BullMQ's attempt to finish the job fails: `Missing key` (the second delivery completed and
 * removed it), `Lock mismatch` (a worker holds it now) or `Missing lock` (it waits for one),
 * first for `moveToFinished`, then, as BullMQ takes that failure for a failed attempt, for
 * `moveToDelayed` (its retry). None of it touches the task: its outcome is the one in the store,
 * and the job is in the hands of whichever worker holds it now.
 */
export interface LostJob {
  readonly jobId: string;
  /** The BullMQ script that found the job gone or held by another. */
  readonly command: string;
  /** What it found: no job (`gone`), a job without a lock (`waiting`), another worker's lock (`taken`). */
  readonly found: 'gone' | 'waiting' | 'taken';
}

/** BullMQ's messages (`finishedErrors` in bullmq/classes/finished-errors). */
const LOST = /^(Missing key|Missing lock|Lock mismatch) for job (\S+?)\. (?:Cmd )?(\w+)/;
const FOUND = { 'Missing key': 'gone', 'Missing lock': 'waiting', 'Lock mismatch': 'taken' } as const;
const RENEWAL_FAILED = /^could not renew lock for job (\S+)$/;

/** The job `error` says this worker lost, or null for any other error. */
export function lostJob(error: Error): LostJob | null {
  const match = LOST.exec(error.message);
  if (!match) return null;
  const [, kind, jobId = '', command = ''] = match;
  return { jobId, command, found: FOUND[kind as keyof typeof FOUND] };
}

/**
 * Logs an error of a BullMQ worker: a lost job (see {@link LostJob}) as one warning per job, the
 * retry BullMQ then attempts and the failed lock renewals that led to it at debug; anything
 * else as an error.
 */
export function logWorkerError(logger: Logger, err: Error): void {
  const lost = lostJob(err);
  if (lost?.command === 'moveToFinished') {
    logger.warn(
      'job no longer held by this worker when its run ended (its lock ran out while Redis was unreachable and BullMQ queued it again); the task store holds the outcome',
      { ...lost },
    );
  } else if (lost) {
    logger.debug('job no longer held by this worker', { ...lost });
  } else if (RENEWAL_FAILED.test(err.message)) {
    logger.debug('could not renew a job lock', { message: err.message });
  } else {
    logger.error('worker error', { err });
  }
}
