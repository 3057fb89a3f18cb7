import type Database from 'better-sqlite3';
import type { Logger } from '../../logger.js';
import { decodeTaskCursor, encodeTaskCursor, notAPageCursor } from '../../tasks/page-cursor.js';
import type {
  CreateOutcome,
  ReadEventsOptions,
  TaskChange,
  TaskEventObserver,
  TaskListQuery,
  TaskPage,
  TaskRepository,
} from '../../tasks/ports.js';
import { isFinal, type Task, type TaskEvent, TaskStatus } from '../../tasks/task.js';
import { encodeEventCursor, parseEventCursor } from './event-cursor.js';
import { GroupCommit } from './group-commit.js';
import { prepareReadLog, type ReadLog } from './sqlite-event-log.js';
import { openTaskStore } from './sqlite-file.js';
import { type PurgeBatch, type PurgeCount, preparePurge } from './sqlite-retention.js';
import { prepareStatements, type TaskRow } from './sqlite-statements.js';
import { StoreHealth } from './store-health.js';

/** A transition applied: the event appended and the status the task had before. */
interface Transitioned {
  readonly event: TaskEvent;
  readonly previous: Task['status'];
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
  /** Told once when the store stops being able to write, and when it can again. */
  readonly logger?: Logger | undefined;
}

/**
 * Tasks and per-user event logs in one SQLite file. Each write (a creation, a transition: update
 * the task, append the event, trim the user's log) is atomic, committed with the other writes of
 * the same event-loop turn ({@link GroupCommit}), and published once that commit is done.
 */
export class SqliteRepository implements TaskRepository {
  readonly #db: Database.Database;
  readonly #retention: number;
  readonly #publishEvent: (event: TaskEvent) => void;
  readonly #observe: TaskEventObserver | undefined;
  readonly #statements: ReturnType<typeof prepareStatements>;
  readonly #commits: GroupCommit;
  readonly #health: StoreHealth;
  readonly #purge: PurgeBatch;
  // Transactions made once: better-sqlite3 builds four wrapper functions per `transaction()` call.
  readonly #claimAll: (ids: readonly string[], claim: TaskChange) => Transitioned[];
  readonly #readLog: ReadLog;

  constructor({ dataDir, eventRetention, publish, observe, logger }: SqliteRepositoryOptions) {
    this.#db = openTaskStore(dataDir);
    this.#health = new StoreHealth(dataDir, logger);
    // The newest event of a log is never trimmed: the next number is taken from it.
    this.#retention = Math.max(1, eventRetention);
    this.#publishEvent = publish;
    this.#observe = observe;
    this.#commits = new GroupCommit(this.#db);
    const db = this.#db;
    this.#statements = prepareStatements(db);
    this.#purge = preparePurge(db, this.#statements);
    this.#claimAll = db.transaction((ids: readonly string[], claim: TaskChange) =>
      ids.map((id) => this.#transitionNow(id, claim)).filter((transitioned) => transitioned !== null),
    );
    this.#readLog = prepareReadLog(db, this.#statements);
  }

  async createMany(tasks: readonly Task[]): Promise<CreateOutcome[]> {
    const { outcomes, appended } = await this.#write(
      () => {
        const appended: TaskEvent[] = [];
        const outcomes = tasks.map((task) => {
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
          appended.push(this.#append(task));
          return { task, created: true };
        });
        return { outcomes, appended };
      },
      (done) => done.appended.length > 0,
    );
    for (const event of appended) this.#publish(event, null);
    return outcomes;
  }

  async findByIdempotencyKey(userId: string, key: string): Promise<Task | null> {
    const row = this.#health.read(() => this.#statements.taskByKey.get(userId, key));
    return row ? (JSON.parse(row.data) as Task) : null;
  }

  async get(id: string): Promise<Task | null> {
    const row = this.#health.read(() => this.#statements.taskById.get(id));
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
      params.push(this.#pageSeq(after, userId));
    }
    const sql = `SELECT seq, id, data FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    const rows = this.#health.read(() =>
      this.#db.prepare<(string | number)[], TaskRow>(sql).all(...params, first + 1),
    );
    const page = rows.slice(0, first);
    return {
      tasks: page.map((row) => JSON.parse(row.data) as Task),
      cursors: page.map((row) => encodeTaskCursor(row.id)),
      hasNextPage: rows.length > first,
    };
  }

  /** `seen` is not needed: the task is read inside the same transaction, without a round trip. */
  async transition(id: string, change: TaskChange, _seen?: Task): Promise<TaskEvent | null> {
    const transitioned = await this.#write(
      () => this.#transitionNow(id, change),
      (done) => done !== null,
    );
    if (!transitioned) return null;
    this.#publish(transitioned.event, transitioned.previous);
    return transitioned.event;
  }

  async readEvents(userId: string, after: string | null, { finalOnly, limit }: ReadEventsOptions) {
    const cursor = after === null ? null : parseEventCursor(after);
    const rows = this.#health.read(() => this.#readLog(userId, cursor, after, finalOnly, limit));
    return rows.map((row) => ({
      cursor: encodeEventCursor(row.user_seq),
      task: JSON.parse(row.data) as Task,
      ...(row.appended_at === null ? {} : { appendedAt: row.appended_at }),
    }));
  }

  async lastCursor(userId: string): Promise<string> {
    return encodeEventCursor(this.#health.read(() => this.#lastUserSeq(userId)));
  }

  /**
   * Within one form, by number. A legacy cursor against one issued now: the legacy one is older.
   * Delivery compares the two only while a subscriber resumed from a legacy cursor has had nothing
   * yet, and then every event it sees was appended after that cursor.
   */
  compareCursors(a: string, b: string): number {
    const [left, right] = [parseEventCursor(a), parseEventCursor(b)];
    if (left.form !== right.form) return left.form === 'legacy' ? -1 : 1;
    return left.seq - right.seq;
  }

  assertCursor(cursor: string): void {
    parseEventCursor(cursor);
  }

  /**
   * Applies `claim` to each of the tasks `ids` in one transaction of its own, now (not with the
   * next group commit: a free worker slot should not wait a turn of the event loop); returns the
   * tasks it moved (to RUNNING), in order, their events published. Embedded runner only: it knows
   * which tasks it queued, so no query looks for them.
   */
  claim(ids: readonly string[], claim: TaskChange): Task[] {
    const claimed = this.#health.writeSync(
      () => this.#claimAll(ids, claim),
      (done) => done.length > 0,
    );
    for (const { event, previous } of claimed) this.#publish(event, previous);
    return claimed.map(({ event }) => event.task);
  }

  /** Ids of up to `limit` QUEUED tasks due at `now`, oldest due first (our runner's tasks only). */
  dueTaskIds(now: number, limit: number): string[] {
    return this.#health
      .read(() => this.#statements.dueTasks.all(TaskStatus.Queued, now, limit))
      .map((row) => row.id);
  }

  /** QUEUED tasks our runner will run (due now or later). */
  countQueued(): number {
    return this.#health.read(() => this.#statements.countWithStatus.get(TaskStatus.Queued)?.n ?? 0);
  }

  /**
   * Why the store cannot serve now, or `null` when it can: a failed trivial query, a full disk, or
   * (after a write failed) a small write that does not commit. Not tried on a full disk: a small
   * write may still fit in room the WAL kept while the writes that matter do not.
   */
  problem(): string | null {
    this.#health.read(() => this.#statements.ping.get());
    if (this.#health.failure && !this.#health.diskIsFull()) {
      try {
        this.#health.writeSync(() => this.#statements.probeWrite.run(Date.now()));
      } catch {
        // The failure stays remembered; problem() reports it.
      }
    }
    return this.#health.problem();
  }

  /** Whether the last write failed for want of storage (and none has committed since). */
  get writeFailed(): boolean {
    return this.#health.failure !== null;
  }

  /** When the next queued task becomes due, or `null` when none waits. */
  nextDueAt(): number | null {
    return this.#health.read(() => this.#statements.nextDue.get(TaskStatus.Queued)?.run_at ?? null);
  }

  /** Ids of tasks our runner had RUNNING; after a crash these were interrupted. */
  runningTaskIds(): string[] {
    return this.#health
      .read(() => this.#statements.tasksWithStatus.all(TaskStatus.Running))
      .map((row) => row.id);
  }

  /** One batch of the task retention (see {@link preparePurge}), its own transaction. */
  purgeFinished(cutoff: number, limit: number): PurgeCount {
    return this.#health.writeSync(
      () => this.#purge(cutoff, limit),
      (purged) => purged.tasks + purged.events > 0,
    );
  }

  close(): void {
    this.#commits.flush();
    this.#db.close();
  }

  /** A write with the next group commit; a storage failure rejects with `UnavailableError`. */
  #write<T>(work: () => T, wrote: (value: T) => boolean): Promise<T> {
    return this.#health.write(() => this.#commits.run(work), wrote);
  }

  #publish(event: TaskEvent, previous: Task['status'] | null): void {
    this.#publishEvent(event);
    this.#observe?.(event, previous);
  }

  /** One transition; the caller holds the transaction (a group commit's savepoint, a claim's). */
  #transitionNow(id: string, change: TaskChange): Transitioned | null {
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
      isFinal(stored.status) ? (stored.finishedAt ?? Date.now()) : null,
      id,
    );
    return { event: this.#append(stored), previous: current.status };
  }

  #append(task: Task): TaskEvent {
    const appendedAt = Date.now();
    const userSeq = this.#lastUserSeq(task.userId) + 1;
    this.#statements.insertEvent.run(
      task.userId,
      userSeq,
      isFinal(task.status) ? 1 : 0,
      JSON.stringify(task),
      appendedAt,
    );
    // Numbers of a log are consecutive, so the newest `retention` events start right above
    // userSeq - retention: nothing to trim until the log is longer than that.
    const keepFrom = userSeq - this.#retention;
    if (keepFrom > 0) {
      const edge = this.#statements.trimEdge.get(task.userId, keepFrom);
      if (edge) {
        this.#statements.trimEvents.run(task.userId, edge.user_seq);
        this.#statements.markTrimmed.run(task.userId, edge.seq, edge.user_seq);
      }
    }
    return { cursor: encodeEventCursor(userSeq), task, appendedAt };
  }

  /** The place in the list a page cursor stands for: its task's, of the user listed (when one is). */
  #pageSeq(cursor: string, userId: string | undefined): number {
    const decoded = decodeTaskCursor(cursor);
    if (decoded.form === 'seq') {
      if (userId !== undefined) throw notAPageCursor(cursor);
      return decoded.seq;
    }
    const place = this.#statements.taskPlace.get(decoded.id);
    if (!place || (userId !== undefined && place.user_id !== userId)) throw notAPageCursor(cursor);
    return place.seq;
  }

  /** Number of the user's newest event, 0 for an empty log. */
  #lastUserSeq(userId: string): number {
    return this.#statements.lastEvent.get(userId)?.user_seq ?? 0;
  }
}
