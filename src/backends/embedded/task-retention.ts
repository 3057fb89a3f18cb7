import type { Purged } from '../retention-schedule.js';
import type { PurgeBatch } from './sqlite-retention.js';

/** Tasks (and about as many events) removed per transaction; the event loop runs between batches. */
const BATCH = 500;

/**
 * The embedded store's purge for TASK_RETENTION: batches of {@link BATCH} until one comes back
 * short, with a turn of the event loop between them, so a large backlog never holds the loop or
 * the writer for long. A batch that fails (the disk is full: a delete needs room in the WAL too)
 * ends the purge with its error; the next run tries again.
 */
export function purgeInBatches(purge: PurgeBatch) {
  return async (cutoff: number, stopped: () => boolean): Promise<Purged> => {
    let tasks = 0;
    let events = 0;
    for (;;) {
      const purged = purge(cutoff, BATCH);
      tasks += purged.tasks;
      events += purged.events;
      if ((purged.tasks < BATCH && purged.events < BATCH) || stopped()) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { tasks, events };
  };
}
