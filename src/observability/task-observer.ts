import type { Logger } from '../logger.js';
import type { TaskEventObserver } from '../tasks/ports.js';
import { isFinal } from '../tasks/task.js';
import type { Metrics } from './metrics.js';

/**
 * Counts and logs (at debug) every event this process appends: events published, tasks entering
 * each status, and how long each finished task took from creation.
 */
export function observeTaskEvents(metrics: Metrics, logger: Logger): TaskEventObserver {
  return (event, previousStatus) => {
    try {
      const { task } = event;
      metrics.eventsPublished.inc({ status: task.status });
      const entered = previousStatus !== task.status;
      if (entered) metrics.statusTransitions.inc({ status: task.status });
      if (entered && isFinal(task.status) && task.finishedAt !== null) {
        metrics.taskDuration.observe(
          { kind: task.kind, status: task.status },
          Math.max(0, task.finishedAt - task.createdAt) / 1000,
        );
      }
      logger.debug('task transition', {
        taskId: task.id,
        userId: task.userId,
        kind: task.kind,
        from: previousStatus,
        to: task.status,
        attempts: task.attempts,
        version: task.version,
        cursor: event.cursor,
      });
    } catch (err) {
      logger.warn('task event observer failed', { err });
    }
  };
}
