import type Database from 'better-sqlite3';

interface PendingWrite {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Group commit: the writes asked for during one turn of the event loop (every request and every
 * finished task whose I/O arrived together) run in one SQLite transaction, committed once at the
 * end of that turn (`setImmediate`), instead of one transaction each. A commit writes each changed
 * page to the WAL once, however many writes touched it, so a burst costs far less than the sum of
 * its writes.
 *
 * Each write runs in a savepoint of its own: one that throws is rolled back alone and rejects
 * alone; the others commit. A write's promise settles only after the commit (durable as every
 * commit is), so a caller never reports something the store could still lose; when the commit
 * itself fails (e.g. the disk is full) every write of the group rejects with that error.
 */
export class GroupCommit {
  readonly #db: Database.Database;
  #pending: PendingWrite[] = [];
  #scheduled: NodeJS.Immediate | undefined;

  constructor(db: Database.Database) {
    this.#db = db;
  }

  /** Runs `work` inside the next group's transaction; resolves with its value once committed. */
  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ work, resolve: resolve as (value: unknown) => void, reject });
      this.#scheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Commits the pending writes now (also before the database closes). */
  flush(): void {
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    const group = this.#pending;
    this.#pending = [];
    if (group.length === 0) return;
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      this.#db.transaction(() => {
        for (const { work } of group) {
          try {
            // A transaction inside a transaction is a savepoint in better-sqlite3.
            outcomes.push({ ok: true, value: this.#db.transaction(work)() });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      })();
    } catch (error) {
      for (const { reject } of group) reject(error);
      return;
    }
    group.forEach(({ resolve, reject }, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) resolve(outcome.value);
      else reject(outcome?.error);
    });
  }
}
