import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { prepareTaskStore } from './sqlite-schema.js';
import { cannotOpenStore } from './storage-errors.js';
import { SAFETY_NET_PAGES, type WalCheckpointer } from './wal-checkpointer.js';

/**
 * A connection to the embedded store's SQLite file in `dataDir` (`tasks.sqlite`, the directory
 * made when missing), or to a database of its own with `:memory:`: WAL (readers do not block the
 * writer), `synchronous = NORMAL` (durable at each checkpoint, one fsync less per transaction),
 * a busy timeout for the moments another connection holds the write lock, and checkpoints left
 * to a {@link WalCheckpointer} thread (a commit checkpoints by itself only past
 * {@link SAFETY_NET_PAGES}).
 */
export function openStoreDatabase(dataDir: string): Database.Database {
  const file = storeFile(dataDir);
  if (file !== null) fs.mkdirSync(dataDir, { recursive: true });
  const db = new Database(file ?? ':memory:');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // The checkpoints are a WalCheckpointer's; a commit checkpoints by itself only far later.
  db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  return db;
}

/** The store's file in `dataDir`; `null` for `:memory:`. */
export function storeFile(dataDir: string): string | null {
  return dataDir === ':memory:' ? null : path.join(dataDir, 'tasks.sqlite');
}

/**
 * The task store's database, its tables made or brought up to date. Throws an error naming
 * DATA_DIR and the cause when it cannot be (e.g. a new database on a full disk).
 */
export function openTaskStore(dataDir: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = openStoreDatabase(dataDir);
    prepareTaskStore(db);
    return db;
  } catch (error) {
    db?.close();
    throw cannotOpenStore(error, dataDir);
  }
}
