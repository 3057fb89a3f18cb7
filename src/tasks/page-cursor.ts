import { InvalidCursorError } from './errors.js';

/**
 * Where a `tasks` page continues: after the task `id` (the cursors issued now), or, from cursors
 * issued by earlier versions, after the insertion sequence number `seq`. A sequence number counts
 * every user's tasks, so the backends take that form only from a caller listing every user's tasks.
 */
export type TaskPageCursor =
  | { readonly form: 'id'; readonly id: string }
  | { readonly form: 'seq'; readonly seq: number };

/**
 * The opaque `tasks` page cursor of both backends: the id of the last task listed, which the
 * backend turns back into that task's place in the list. It tells its holder nothing they did not
 * know (the task is in their page), unlike a sequence number, which counts other users' tasks too.
 */
export function encodeTaskCursor(taskId: string): string {
  return Buffer.from(`i:${taskId}`).toString('base64url');
}

/** What a cursor from {@link encodeTaskCursor} (or an earlier version's) says; `InvalidCursorError` otherwise. */
export function decodeTaskCursor(cursor: string): TaskPageCursor {
  const decoded = Buffer.from(cursor, 'base64url').toString();
  const seq = /^t:(\d{1,15})$/.exec(decoded)?.[1];
  if (seq !== undefined) return { form: 'seq', seq: Number(seq) };
  if (decoded.startsWith('i:') && decoded.length > 2 && encodeTaskCursor(decoded.slice(2)) === cursor) {
    return { form: 'id', id: decoded.slice(2) };
  }
  throw new InvalidCursorError(`not a task list cursor: ${JSON.stringify(cursor)}`);
}

/** The cursor refused alike whether its task is unknown, another user's, or it is a sequence number a user may not use. */
export function notAPageCursor(cursor: string): InvalidCursorError {
  return new InvalidCursorError(`not a task list cursor: ${JSON.stringify(cursor)}`);
}
