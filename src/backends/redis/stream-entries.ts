import { InvalidCursorError } from '../../tasks/errors.js';
import type { Task, TaskEvent } from '../../tasks/task.js';

/**
 * A user's event log is a Redis Stream: its entry ids (`<ms>-<n>`) are the cursors, each entry
 * holds the task as it was (`d`), whether that status is final (`f`) and when it was appended (`a`).
 */
export type StreamEntry = [id: string, fields: string[]];

/** Cursor before every entry of a stream. */
export const START_OF_LOG = '0-0';

const STREAM_ID = /^(\d{1,16})-(\d{1,16})$/;

/** The two numbers of a stream id; throws `InvalidCursorError` for a string that is not one. */
export function parseStreamId(cursor: string): [number, number] {
  const match = STREAM_ID.exec(cursor);
  if (!match) throw new InvalidCursorError(`not an event cursor: ${JSON.stringify(cursor)}`);
  return [Number(match[1]), Number(match[2])];
}

/** A stream entry as the event it logs (and whether its status is final). */
export function entryToEvent([id, fields]: StreamEntry): TaskEvent & { final: boolean } {
  const values: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) values[fields[i] as string] = fields[i + 1] as string;
  const appendedAt = Number(values['a']);
  return {
    cursor: id,
    task: JSON.parse(values['d'] ?? 'null') as Task,
    final: values['f'] === '1',
    ...(Number.isFinite(appendedAt) && values['a'] !== undefined ? { appendedAt } : {}),
  };
}
