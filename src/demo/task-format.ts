import type { Task } from '../client/index.js';

const MAX_OUTCOME_CHARS = 80;

/** A one-line summary of how a task ended (its result or error), or `''` while it runs. */
export function outcome(task: Task): string {
  if (task.error) return `${task.error.code}: ${task.error.message}`;
  if (task.status !== 'SUCCEEDED') return '';
  const text = JSON.stringify(task.result) ?? 'null';
  return text.length > MAX_OUTCOME_CHARS ? `${text.slice(0, MAX_OUTCOME_CHARS - 1)}…` : text;
}

/** A message fit to show for anything a call threw. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
