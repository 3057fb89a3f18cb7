import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * A connection to the embedded store's SQLite file in `dataDir` (`tasks.sqlite`, the directory
 * made when missing), or to a database of its own with `:memory:`: WAL (readers do not block the
 * writer), `synchronous = NORMAL` (durable at each checkpoint, one fsync less per transaction),
 * and a busy timeout for the moments another connection holds the write lock.
 */
export function openStoreDatabase(dataDir: string): Database.Database {
  let file = ':memory:';
  if (dataDir !== ':memory:') {
    fs.mkdirSync(dataDir, { recursive: true });
    file = path.join(dataDir, 'tasks.sqlite');
  }
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return db;
}
