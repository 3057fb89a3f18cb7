import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CursorExpiredError, InvalidCursorError } from '../../tasks/errors.js';
import { decodeTaskCursor, encodeTaskCursor } from '../../tasks/page-cursor.js';
import type {
  ReadEventsOptions,
  TaskChange,
  TaskEventObserver,
  TaskListQuery,
  TaskPage,
  TaskRepository,
} from '../../tasks/ports.js';
import { isFinal, type Task, type TaskEvent, TaskStatus } from '../../tasks/task.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL,
  status TEXT NOT NULL,
  external INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  idempotency_key TEXT,
  data TEXT NOT NULL
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
`;

interface TaskRow {
  seq: number;
  data: string;
}
interface EventRow {
  seq: number;
  data: string;
  appended_at: number | null;
}

/** Adds the columns later versions introduced to a database an earlier version created. */
function migrate(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>('PRAGMA table_info(events)').all();
  if (!columns.some((column) => column.name === 'appended_at')) {
    db.exec('ALTER TABLE events ADD COLUMN appended_at INTEGER');
  }
}

function parseEventCursor(cursor: string): number {
  if (!/^\d{1,15}$/.test(cursor))
    throw new InvalidCursorError(`not an event cursor: ${JSON.stringify(cursor)}`);
  return Number(cursor);
}

export interface SqliteRepositoryOptions {
  /** Directory of the database file; `:memory:` keeps it in memory. */
  readonly dataDir: string;
  /** Events kept per user. */
  readonly eventRetention: number;
  /** Called with each event after its transaction commits. */
  readonly publish: (event: TaskEvent) => void;
  /** Told of each event after it is published (metrics, logs). */
  readonly observe?: TaskEventObserver | undefined;
}

/**
 * Tasks and per-user event logs in one SQLite file. Each transition is one transaction (update the
 * task, append the event, trim the user's log) and is published once it has committed.
 */
export class SqliteRepository implements TaskRepository {
  readonly #db: Database.Database;
  readonly #retention: number;
  readonly #publishEvent: (event: TaskEvent) => void;
  readonly #observe: TaskEventObserver | undefined;
  readonly #statements;

  constructor({ dataDir, eventRetention, publish, observe }: SqliteRepositoryOptions) {
    let file = ':memory:';
    if (dataDir !== ':memory:') {
      fs.mkdirSync(dataDir, { recursive: true });
      file = path.join(dataDir, 'tasks.sqlite');
    }
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(SCHEMA);
    migrate(this.#db);
    this.#retention = eventRetention;
    this.#publishEvent = publish;
    this.#observe = observe;
    const db = this.#db;
    this.#statements = {
      insertTask: db.prepare<[string, string, string, number, number, string | null, string]>(
        'INSERT INTO tasks (id, user_id, status, external, run_at, idempotency_key, data) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ),
      taskById: db.prepare<[string], TaskRow>('SELECT seq, data FROM tasks WHERE id = ?'),
      taskByKey: db.prepare<[string, string], TaskRow>(
        'SELECT seq, data FROM tasks WHERE user_id = ? AND idempotency_key = ?',
      ),
      updateTask: db.prepare<[string, number, number, string, string]>(
        'UPDATE tasks SET status = ?, external = ?, run_at = ?, data = ? WHERE id = ?',
      ),
      insertEvent: db.prepare<[string, number, string, number]>(
        'INSERT INTO events (user_id, final, data, appended_at) VALUES (?, ?, ?, ?)',
      ),
      retentionEdge: db.prepare<[string, number], { seq: number }>(
        'SELECT seq FROM events WHERE user_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?',
      ),
      trimEvents: db.prepare<[string, number]>('DELETE FROM events WHERE user_id = ? AND seq <= ?'),
      markTrimmed: db.prepare<[string, number]>(
        `INSERT INTO trimmed_logs (user_id, trimmed_through) VALUES (?, ?)
         ON CONFLICT (user_id) DO UPDATE SET trimmed_through = max(trimmed_through, excluded.trimmed_through)`,
      ),
      trimmedThrough: db.prepare<[string], { trimmed_through: number }>(
        'SELECT trimmed_through FROM trimmed_logs WHERE user_id = ?',
      ),
      eventsAfter: db.prepare<[string, number, number], EventRow>(
        'SELECT seq, data, appended_at FROM events WHERE user_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      finalEventsAfter: db.prepare<[string, number, number], EventRow>(
        'SELECT seq, data, appended_at FROM events WHERE user_id = ? AND seq > ? AND final = 1 ORDER BY seq LIMIT ?',
      ),
      lastEvent: db.prepare<[string], { seq: number }>(
        'SELECT max(seq) AS seq FROM events WHERE user_id = ?',
      ),
      lastIssuedEvent: db.prepare<[], { seq: number }>(
        "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
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
    };
  }

  async create(task: Task): Promise<{ task: Task; created: boolean }> {
    const pending: TaskEvent[] = [];
    const result = this.#db.transaction(() => {
      if (task.idempotencyKey !== null) {
        const existing = this.#statements.taskByKey.get(task.userId, task.idempotencyKey);
        if (existing) return { task: JSON.parse(existing.data) as Task, created: false };
      }
      this.#statements.insertTask.run(
        task.id,
        task.userId,
        task.status,
        task.external ? 1 : 0,
        task.runAt,
        task.idempotencyKey,
        JSON.stringify(task),
      );
      pending.push(this.#append(task));
      return { task, created: true };
    })();
    for (const event of pending) this.#publish(event, null);
    return result;
  }

  async findByIdempotencyKey(userId: string, key: string): Promise<Task | null> {
    const row = this.#statements.taskByKey.get(userId, key);
    return row ? (JSON.parse(row.data) as Task) : null;
  }

  async get(id: string): Promise<Task | null> {
    const row = this.#statements.taskById.get(id);
    return row ? (JSON.parse(row.data) as Task) : null;
  }

  async list({ userId, statuses, first, after }: TaskListQuery): Promise<TaskPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (userId !== undefined) {
      where.push('user_id = ?');
      params.push(userId);
    }
    if (statuses && statuses.length > 0) {
      where.push(`status IN (${statuses.map(() => '?').join(', ')})`);
      params.push(...statuses);
    }
    if (after !== undefined) {
      where.push('seq < ?');
      params.push(decodeTaskCursor(after));
    }
    const sql = `SELECT seq, data FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    const rows = this.#db.prepare<(string | number)[], TaskRow>(sql).all(...params, first + 1);
    const page = rows.slice(0, first);
    return {
      tasks: page.map((row) => JSON.parse(row.data) as Task),
      cursors: page.map((row) => encodeTaskCursor(row.seq)),
      hasNextPage: rows.length > first,
    };
  }

  async transition(id: string, change: TaskChange): Promise<TaskEvent | null> {
    const transitioned = this.#transitionNow(id, change);
    if (!transitioned) return null;
    this.#publish(transitioned.event, transitioned.previous);
    return transitioned.event;
  }

  async readEvents(userId: string, after: string | null, { finalOnly, limit }: ReadEventsOptions) {
    const afterSeq = after === null ? 0 : parseEventCursor(after);
    const read = this.#db.transaction(() => {
      const trimmed = this.#statements.trimmedThrough.get(userId)?.trimmed_through ?? 0;
      const issued = this.#statements.lastIssuedEvent.get()?.seq ?? 0;
      // A cursor below the trimmed edge lost events; one above everything issued comes from another database.
      if (after !== null && (afterSeq < trimmed || afterSeq > issued)) {
        throw new CursorExpiredError(`cursor ${after} is outside the retained event log`);
      }
      const statement = finalOnly ? this.#statements.finalEventsAfter : this.#statements.eventsAfter;
      return statement.all(userId, afterSeq, limit);
    });
    return read().map((row) => ({
      cursor: String(row.seq),
      task: JSON.parse(row.data) as Task,
      ...(row.appended_at === null ? {} : { appendedAt: row.appended_at }),
    }));
  }

  async lastCursor(userId: string): Promise<string> {
    return String(this.#statements.lastEvent.get(userId)?.seq ?? 0);
  }

  compareCursors(a: string, b: string): number {
    return parseEventCursor(a) - parseEventCursor(b);
  }

  assertCursor(cursor: string): void {
    parseEventCursor(cursor);
  }

  /** Moves up to `limit` due QUEUED tasks to RUNNING with `claim`, oldest due first. Embedded runner only. */
  claimDue(now: number, limit: number, claim: TaskChange): Task[] {
    const claimed = this.#db.transaction(() =>
      this.#statements.dueTasks
        .all(TaskStatus.Queued, now, limit)
        .map((row) => this.#transitionNow(row.id, claim))
        .filter((transitioned) => transitioned !== null),
    )();
    for (const { event, previous } of claimed) this.#publish(event, previous);
    return claimed.map(({ event }) => event.task);
  }

  /** QUEUED tasks our runner will run (due now or later). */
  countQueued(): number {
    return this.#statements.countWithStatus.get(TaskStatus.Queued)?.n ?? 0;
  }

  /** Throws when the database does not answer a trivial query. */
  ping(): void {
    this.#statements.ping.get();
  }

  /** When the next queued task becomes due, or `null` when none waits. */
  nextDueAt(): number | null {
    return this.#statements.nextDue.get(TaskStatus.Queued)?.run_at ?? null;
  }

  /** Ids of tasks our runner had RUNNING; after a crash these were interrupted. */
  runningTaskIds(): string[] {
    return this.#statements.tasksWithStatus.all(TaskStatus.Running).map((row) => row.id);
  }

  close(): void {
    this.#db.close();
  }

  #publish(event: TaskEvent, previous: Task['status'] | null): void {
    this.#publishEvent(event);
    this.#observe?.(event, previous);
  }

  #transitionNow(id: string, change: TaskChange): { event: TaskEvent; previous: Task['status'] } | null {
    return this.#db.transaction(() => {
      const row = this.#statements.taskById.get(id);
      if (!row) return null;
      const current = JSON.parse(row.data) as Task;
      const next = change(current);
      if (!next) return null;
      const stored: Task = { ...next, version: current.version + 1 };
      this.#statements.updateTask.run(
        stored.status,
        stored.external ? 1 : 0,
        stored.runAt,
        JSON.stringify(stored),
        id,
      );
      return { event: this.#append(stored), previous: current.status };
    })();
  }

  #append(task: Task): TaskEvent {
    const appendedAt = Date.now();
    const { lastInsertRowid } = this.#statements.insertEvent.run(
      task.userId,
      isFinal(task.status) ? 1 : 0,
      JSON.stringify(task),
      appendedAt,
    );
    const edge = this.#statements.retentionEdge.get(task.userId, this.#retention);
    if (edge) {
      this.#statements.trimEvents.run(task.userId, edge.seq);
      this.#statements.markTrimmed.run(task.userId, edge.seq);
    }
    return { cursor: String(lastInsertRowid), task, appendedAt };
  }
}
