import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../logger.js';
import { UnavailableError } from '../../tasks/errors.js';
import type { TaskRepository } from '../../tasks/ports.js';

/** First wait before writing a run's transition again; it doubles up to {@link MAX_WAIT_MS}. */
const FIRST_WAIT_MS = 200;
const MAX_WAIT_MS = 5_000;

/**
 * The store as the embedded runner writes to it: a transition the store cannot write now (the
 * disk is full: `UnavailableError`) is tried again, with backoff, until it commits or `stop` is
 * aborted (shutdown; the task is then still RUNNING, and the next start's recovery ends it). So a
 * task whose handler finished while the disk was full keeps its result and ends once space
 * returns, without a restart. Only one write is ever in flight per run (the executor chains
 * them), and a retried change applies to the stored task again: a task that ended meanwhile (a
 * cancellation) is left as it is, so nothing ends twice.
 */
export function retryingTransitions(
  repository: TaskRepository,
  stop: AbortSignal,
  logger: Logger,
): TaskRepository {
  return {
    createMany: (tasks) => repository.createMany(tasks),
    findByIdempotencyKey: (userId, key) => repository.findByIdempotencyKey(userId, key),
    get: (id) => repository.get(id),
    list: (query) => repository.list(query),
    readEvents: (userId, after, options) => repository.readEvents(userId, after, options),
    lastCursor: (userId) => repository.lastCursor(userId),
    compareCursors: (a, b) => repository.compareCursors(a, b),
    assertCursor: (cursor) => repository.assertCursor(cursor),
    async transition(id, change, seen) {
      for (let wait = FIRST_WAIT_MS, tries = 1; ; tries++) {
        try {
          const event = await repository.transition(id, change, seen);
          if (tries > 1) {
            logger.info('task write went through once the store could write', { taskId: id, tries });
          }
          return event;
        } catch (error) {
          if (!(error instanceof UnavailableError) || stop.aborted) throw error;
          if (tries === 1) {
            logger.warn('writing a task failed; trying again until the store can write', {
              taskId: id,
              reason: error.message,
            });
          }
          await sleep(wait, undefined, { signal: stop }).catch(() => {});
          if (stop.aborted) throw error;
          wait = Math.min(MAX_WAIT_MS, wait * 2);
        }
      }
    },
  };
}
