import { InvalidCursorError } from '../../tasks/errors.js';

/**
 * An event cursor: `user`, the event's number in its user's log, as issued now (opaque, base64url
 * of `e:<n>`); or `legacy`, the global sequence number earlier versions issued (bare digits), still
 * accepted so that clients resume across the upgrade. Numbering per user means a cursor tells its
 * holder nothing of other users' activity.
 */
export type EventCursor = { readonly form: 'user' | 'legacy'; readonly seq: number };

export function encodeEventCursor(userSeq: number): string {
  return Buffer.from(`e:${userSeq}`).toString('base64url');
}

export function parseEventCursor(cursor: string): EventCursor {
  if (/^\d{1,15}$/.test(cursor)) return { form: 'legacy', seq: Number(cursor) };
  const match = /^e:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString());
  // Decoding is lenient; only the one spelling this log issues is a cursor.
  if (!match || encodeEventCursor(Number(match[1])) !== cursor) {
    throw new InvalidCursorError(`not an event cursor: ${JSON.stringify(cursor)}`);
  }
  return { form: 'user', seq: Number(match[1]) };
}
