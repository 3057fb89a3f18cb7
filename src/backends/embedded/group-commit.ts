import type Database from 'better-sqlite3';

type Outcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: unknown };

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
 * itself fails (e.g. the disk is full), or SQLite rolled the whole transaction back, every write of
 * the group rejects with that error: nothing of the group is stored.
 */
export class GroupCommit {
  #pending: PendingWrite[] = [];
  #scheduled: NodeJS.Immediate | undefined;
  /** A write in a savepoint of its own (a transaction inside a transaction, in better-sqlite3). */
  readonly #inSavepoint: (work: () => unknown) => unknown;
  /** One group in one transaction: each write's value or error, in order. */
  readonly #commitGroup: (group: readonly PendingWrite[]) => Outcome[];

  constructor(db: Database.Database) {
    // Made once: better-sqlite3 builds four wrapper functions for each `transaction()` call.
    this.#inSavepoint = db.transaction((work: () => unknown) => work());
    this.#commitGroup = db.transaction((group: readonly PendingWrite[]) =>
      group.map(({ work }): Outcome => {
        try {
          return { ok: true, value: this.#inSavepoint(work) };
        } catch (error) {
          // SQLite may answer a full disk or an I/O error by rolling back the whole transaction:
          // the writes before this one are gone, and the rest would run outside any transaction
          // (each committing alone while its caller is told it failed). The group fails as one.
          if (!db.inTransaction) throw error;
          return { ok: false, error };
        }
      }),
    );
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
    let outcomes: Outcome[];
    try {
      outcomes = this.#commitGroup(group);
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
