import type Database from 'better-sqlite3';

/** The task store's tables: tasks, per-user event logs and how far each log was trimmed. */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  external INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  idempotency_key TEXT,
  data TEXT NOT NULL,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_user ON tasks (user_id, seq);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_by_idempotency_key ON tasks (user_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (status, external, run_at);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id TEXT NOT NULL,
  final INTEGER NOT NULL,
  data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS trimmed_logs (
  user_id TEXT PRIMARY KEY,
  trimmed_through INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS store_probe (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  at INTEGER NOT NULL
);
`;

/**
 * When each task already final in a database an earlier version created reached its final status
 * (`finished_at`, read by the task retention), taken from the task's own JSON.
 */
const ADD_FINISHED_AT = `
ALTER TABLE tasks ADD COLUMN finished_at INTEGER;
UPDATE tasks SET finished_at = coalesce(json_extract(data, '$.finishedAt'), json_extract(data, '$.createdAt'))
  WHERE status IN ('SUCCEEDED', 'FAILED', 'CANCELLED');
`;

/**
 * Numbers every stored event within its user's log (`user_seq`, from 1) in a database an earlier
 * version created, where events had only the global `seq`. A user whose log was trimmed before
 * gets numbers from 2 and `user_trimmed_through` 1: a stand-in for the history already gone, so
 * that no cursor of the new form can reach before it.
 */
const NUMBER_EVENTS_PER_USER = `
ALTER TABLE events ADD COLUMN user_seq INTEGER;
ALTER TABLE trimmed_logs ADD COLUMN user_trimmed_through INTEGER NOT NULL DEFAULT 0;
UPDATE trimmed_logs SET user_trimmed_through = 1;
UPDATE events SET user_seq = numbered.n + (events.user_id IN (SELECT user_id FROM trimmed_logs))
  FROM (SELECT seq, row_number() OVER (PARTITION BY user_id ORDER BY seq) AS n FROM events) AS numbered
  WHERE numbered.seq = events.seq;
`;

/** Adds the columns later versions introduced to a database an earlier version created. */
function migrate(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(events)').all();
  if (!columns.some((column) => column.name === 'appended_at')) {
    db.exec('ALTER TABLE events ADD COLUMN appended_at INTEGER');
  }
  if (!columns.some((column) => column.name === 'user_seq')) {
    db.transaction(() => db.exec(NUMBER_EVENTS_PER_USER))();
  }
  db.exec('CREATE INDEX IF NOT EXISTS events_by_user_seq ON events (user_id, user_seq)');
  const taskColumns = db.prepare<[], { name: string }>('PRAGMA table_info(tasks)').all();
  if (!taskColumns.some((column) => column.name === 'finished_at')) {
    db.transaction(() => db.exec(ADD_FINISHED_AT))();
  }
  // What the task retention searches by: tasks by when they finished, events by age.
  db.exec(`CREATE INDEX IF NOT EXISTS tasks_by_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX IF NOT EXISTS events_by_appended_at ON events (appended_at) WHERE appended_at IS NOT NULL;`);
}

/** Creates the task store's tables, or brings those of an earlier version up to date. */
export function prepareTaskStore(db: Database.Database): void {
  db.exec(SCHEMA);
  migrate(db);
}
