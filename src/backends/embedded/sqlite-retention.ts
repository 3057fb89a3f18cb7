import type Database from 'better-sqlite3';
import type { prepareStatements } from './sqlite-statements.js';

/** What one purge batch removed. */
export interface PurgeCount {
  readonly tasks: number;
  readonly events: number;
}

/** One bounded purge step: removes at most `limit` tasks and about `limit` events older than `cutoff`. */
export type PurgeBatch = (cutoff: number, limit: number) => PurgeCount;

/**
 * The task retention's SQL: tasks that reached a final status before the cutoff (their
 * idempotency keys are columns of their rows, so they go with them), and events appended before
 * it. Each log keeps its newest event — the next event's number is taken from it — and its trimmed
 * edge moves past what went, so a cursor from before the purge gets CURSOR_EXPIRED instead of
 * silently skipping events. One transaction per batch, so no batch holds the writer for long.
 */
export function preparePurge(
  db: Database.Database,
  statements: ReturnType<typeof prepareStatements>,
): PurgeBatch {
  const deleteTasks = db.prepare<[number, number]>(
    `DELETE FROM tasks WHERE seq IN (
       SELECT seq FROM tasks WHERE finished_at IS NOT NULL AND finished_at < ? ORDER BY finished_at LIMIT ?)`,
  );
  // Per user, the newest of the oldest `limit` events before the cutoff (a log's newest event left
  // out): everything of that log up to it is older still (numbers grow with time), so trimming
  // through it stays within the batch.
  const oldEvents = db.prepare<[number, number], { user_id: string; user_seq: number }>(
    `SELECT user_id, max(user_seq) AS user_seq FROM (
       SELECT user_id, user_seq FROM events AS old WHERE appended_at < ?
         AND user_seq < (SELECT max(user_seq) FROM events WHERE user_id = old.user_id)
       ORDER BY appended_at LIMIT ?)
     GROUP BY user_id`,
  );
  return db.transaction((cutoff: number, limit: number): PurgeCount => {
    const tasks = deleteTasks.run(cutoff, limit).changes;
    let events = 0;
    for (const { user_id: userId, user_seq: oldest } of oldEvents.all(cutoff, limit)) {
      const edge = statements.trimEdge.get(userId, oldest);
      if (!edge) continue;
      events += statements.trimEvents.run(userId, edge.user_seq).changes;
      statements.markTrimmed.run(userId, edge.seq, edge.user_seq);
    }
    return { tasks, events };
  });
}
