import type Database from 'better-sqlite3';

/** A task's row: its place in the list (`seq`), its id and the task as JSON. */
export interface TaskRow {
  seq: number;
  id: string;
  data: string;
}

/** An event's row: its number in its user's log, the task as JSON, when it was appended. */
export interface EventRow {
  user_seq: number;
  data: string;
  appended_at: number | null;
}

/** The task store's statements, prepared once per connection. */
export function prepareStatements(db: Database.Database) {
  return {
    insertTask: db.prepare<[string, string, string, number, number, string | null, string]>(
      'INSERT INTO tasks (id, user_id, status, external, run_at, idempotency_key, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    taskById: db.prepare<[string], TaskRow>('SELECT seq, id, data FROM tasks WHERE id = ?'),
    taskPlace: db.prepare<[string], { seq: number; user_id: string }>(
      'SELECT seq, user_id FROM tasks WHERE id = ?',
    ),
    taskByKey: db.prepare<[string, string], TaskRow>(
      'SELECT seq, id, data FROM tasks WHERE user_id = ? AND idempotency_key = ?',
    ),
    updateTask: db.prepare<[string, number, number, string, number | null, string]>(
      'UPDATE tasks SET status = ?, external = ?, run_at = ?, data = ?, finished_at = ? WHERE id = ?',
    ),
    insertEvent: db.prepare<[string, number, number, string, number]>(
      'INSERT INTO events (user_id, user_seq, final, data, appended_at) VALUES (?, ?, ?, ?, ?)',
    ),
    trimEdge: db.prepare<[string, number], { seq: number; user_seq: number }>(
      'SELECT seq, user_seq FROM events WHERE user_id = ? AND user_seq <= ? ORDER BY user_seq DESC LIMIT 1',
    ),
    trimEvents: db.prepare<[string, number]>('DELETE FROM events WHERE user_id = ? AND user_seq <= ?'),
    // Both edges: the global one for legacy cursors, the user's own for cursors issued now.
    markTrimmed: db.prepare<[string, number, number]>(
      `INSERT INTO trimmed_logs (user_id, trimmed_through, user_trimmed_through) VALUES (?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET
         trimmed_through = max(trimmed_through, excluded.trimmed_through),
         user_trimmed_through = max(user_trimmed_through, excluded.user_trimmed_through)`,
    ),
    trimmedThrough: db.prepare<[string], { trimmed_through: number; user_trimmed_through: number }>(
      'SELECT trimmed_through, user_trimmed_through FROM trimmed_logs WHERE user_id = ?',
    ),
    eventsAfter: db.prepare<[string, number, number], EventRow>(
      'SELECT user_seq, data, appended_at FROM events WHERE user_id = ? AND user_seq > ? ORDER BY user_seq LIMIT ?',
    ),
    finalEventsAfter: db.prepare<[string, number, number], EventRow>(
      'SELECT user_seq, data, appended_at FROM events WHERE user_id = ? AND user_seq > ? AND final = 1 ORDER BY user_seq LIMIT ?',
    ),
    legacyEventsAfter: db.prepare<[string, number, number], EventRow>(
      'SELECT user_seq, data, appended_at FROM events WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?',
    ),
    legacyFinalEventsAfter: db.prepare<[string, number, number], EventRow>(
      'SELECT user_seq, data, appended_at FROM events WHERE user_id = ? AND seq > ? AND final = 1 ORDER BY seq LIMIT ?',
    ),
    isUsersEvent: db.prepare<[string, number], { one: number }>(
      'SELECT 1 AS one FROM events WHERE user_id = ? AND seq = ?',
    ),
    lastEvent: db.prepare<[string], { user_seq: number | null }>(
      'SELECT max(user_seq) AS user_seq FROM events WHERE user_id = ?',
    ),
    dueTasks: db.prepare<[string, number, number], { id: string }>(
      'SELECT id FROM tasks WHERE status = ? AND external = 0 AND run_at <= ? ORDER BY run_at, seq LIMIT ?',
    ),
    nextDue: db.prepare<[string], { run_at: number | null }>(
      'SELECT min(run_at) AS run_at FROM tasks WHERE status = ? AND external = 0',
    ),
    tasksWithStatus: db.prepare<[string], { id: string }>(
      'SELECT id FROM tasks WHERE status = ? AND external = 0 ORDER BY seq',
    ),
    countWithStatus: db.prepare<[string], { n: number }>(
      'SELECT count(*) AS n FROM tasks WHERE status = ? AND external = 0',
    ),
    ping: db.prepare<[], { one: number }>('SELECT 1 AS one'),
    // A write of one small row: whether a commit goes through now (the readiness probe's).
    probeWrite: db.prepare<[number]>(
      'INSERT INTO store_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at',
    ),
  };
}
