import type Database from 'better-sqlite3';
import type { RevocationStore } from '../../tasks/ports.js';
import { openStoreDatabase } from './sqlite-file.js';
import { StoreHealth } from './store-health.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS revocations (
  user_id TEXT PRIMARY KEY,
  revoked_before INTEGER NOT NULL
);
`;

export interface SqliteRevocationsOptions {
  /** Directory of the database file (the task store's), or `:memory:`. */
  readonly dataDir: string;
}

/**
 * Each user's revoked-before timestamp, in a table of the task store's SQLite file. Its own
 * connection to that file: revocations are rare writes and small reads, and the task store's
 * module stays about tasks (with `:memory:`, a database of its own, as one process needs).
 */
export class SqliteRevocations implements RevocationStore {
  readonly #db: Database.Database;
  readonly #statements;
  /** Turns a storage failure into `UnavailableError` (SERVICE_UNAVAILABLE) for the caller. */
  readonly #health: StoreHealth;

  constructor({ dataDir }: SqliteRevocationsOptions) {
    this.#health = new StoreHealth(dataDir);
    this.#db = openStoreDatabase(dataDir);
    this.#db.exec(SCHEMA);
    this.#statements = {
      revoke: this.#db.prepare<[string, number], { revoked_before: number }>(
        `INSERT INTO revocations (user_id, revoked_before) VALUES (?, ?)
         ON CONFLICT (user_id) DO UPDATE SET revoked_before = max(revoked_before, excluded.revoked_before)
         RETURNING revoked_before`,
      ),
      read: this.#db.prepare<[string], { revoked_before: number }>(
        'SELECT revoked_before FROM revocations WHERE user_id = ?',
      ),
    };
  }

  async revokeBefore(userId: string, before: number): Promise<number> {
    const row = this.#health.writeSync(() => this.#statements.revoke.get(userId, Math.floor(before)));
    return row?.revoked_before ?? before;
  }

  async revokedBefore(userId: string): Promise<number> {
    return this.#health.read(() => this.#statements.read.get(userId))?.revoked_before ?? 0;
  }

  close(): void {
    this.#db.close();
  }
}
