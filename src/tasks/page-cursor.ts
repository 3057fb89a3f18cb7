import { InvalidCursorError } from './errors.js';

/**
 * The opaque `tasks` page cursor of both backends: the task's insertion sequence number, so a
 * page continues after the last task the previous one listed whatever the storage.
 */
export function encodeTaskCursor(seq: number): string {
  return Buffer.from(`t:${seq}`).toString('base64url');
}

/** The sequence number inside a cursor from {@link encodeTaskCursor}; `InvalidCursorError` otherwise. */
export function decodeTaskCursor(cursor: string): number {
  const match = /^t:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match?.[1]) throw new InvalidCursorError(`not a task list cursor: ${JSON.stringify(cursor)}`);
  return Number(match[1]);
}
