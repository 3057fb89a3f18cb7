import type Database from 'better-sqlite3';
import { CursorExpiredError } from '../../tasks/errors.js';
import type { EventCursor } from './event-cursor.js';
import type { EventRow, prepareStatements } from './sqlite-statements.js';

/** Up to `limit` events of `userId`'s log after `cursor` (`after` as the caller gave it), oldest first. */
export type ReadLog = (
  userId: string,
  cursor: EventCursor | null,
  after: string | null,
  finalOnly: boolean,
  limit: number,
) => EventRow[];

/**
 * Reading a user's event log, in one transaction (so the trimmed edge and the events agree):
 * throws `CursorExpiredError` for a cursor below the edge the log was trimmed to (by
 * EVENT_RETENTION or TASK_RETENTION) or above its newest event.
 */
export function prepareReadLog(
  db: Database.Database,
  statements: ReturnType<typeof prepareStatements>,
): ReadLog {
  const expired = (after: string | null) =>
    new CursorExpiredError(`cursor ${after} is outside the retained event log`);
  return db.transaction(
    (userId: string, cursor: EventCursor | null, after: string | null, finalOnly: boolean, limit: number) => {
      const trimmed = statements.trimmedThrough.get(userId);
      if (cursor?.form === 'legacy') {
        const edge = trimmed?.trimmed_through ?? 0;
        // Earlier versions issued as cursors only 0 (empty log), events of this log and its trim
        // edge. Anything else is refused alike, whether from another log or probing how far the
        // global sequence has got.
        const issuedHere =
          cursor.seq === 0 || cursor.seq === edge || statements.isUsersEvent.get(userId, cursor.seq);
        if (!issuedHere || cursor.seq < edge) throw expired(after);
        const legacy = finalOnly ? statements.legacyFinalEventsAfter : statements.legacyEventsAfter;
        return legacy.all(userId, cursor.seq, limit);
      }
      const afterSeq = cursor?.seq ?? 0;
      const newest = () => statements.lastEvent.get(userId)?.user_seq ?? 0;
      // Below the trimmed edge lost events; above the newest was never issued by this log.
      if (cursor !== null && (afterSeq < (trimmed?.user_trimmed_through ?? 0) || afterSeq > newest())) {
        throw expired(after);
      }
      const statement = finalOnly ? statements.finalEventsAfter : statements.eventsAfter;
      return statement.all(userId, afterSeq, limit);
    },
  );
}
