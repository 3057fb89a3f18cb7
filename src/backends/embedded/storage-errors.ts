import fs from 'node:fs';
import Database from 'better-sqlite3';
import { UnavailableError } from '../../tasks/errors.js';

/** better-sqlite3's error, its `code` the SQLite result code (`SQLITE_FULL`, `SQLITE_IOERR_WRITE`…). */
export type SqliteError = InstanceType<typeof Database.SqliteError>;

/** How long a client is told to wait before retrying a request the store could not serve. */
export const STORE_RETRY_AFTER_MS = 5_000;

/**
 * SQLite result codes (primary, as `err.code` begins) that say the file cannot be written or read
 * now — the disk is full, an I/O error, a read-only file system, the file cannot be opened, another
 * connection held the lock past the busy timeout — rather than that the statement is wrong.
 */
const STORAGE_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|NOLFS|PROTOCOL)(_|$)/;

/** Whether `error` is better-sqlite3's report of storage that cannot serve now (see {@link STORAGE_CODES}). */
export function isStorageError(error: unknown): error is SqliteError {
  return error instanceof Database.SqliteError && STORAGE_CODES.test(error.code);
}

/** Whether the file system holding `dataDir` has no space left for an unprivileged writer. */
export function diskIsFull(dataDir: string): boolean {
  if (dataDir === ':memory:') return false;
  try {
    return fs.statfsSync(dataDir).bavail === 0;
  } catch {
    return false;
  }
}

/** Why the store cannot serve, in words an operator acts on: `the disk is full`, `a disk I/O error (SQLITE_IOERR_WRITE)`. */
export function describeStorageError(error: SqliteError, dataDir: string): string {
  const code = error.code;
  if (code.startsWith('SQLITE_FULL') || diskIsFull(dataDir)) return 'the disk is full';
  if (code.startsWith('SQLITE_READONLY')) return `the database file is read-only (${code})`;
  if (code.startsWith('SQLITE_CANTOPEN')) return `the database file cannot be opened (${code})`;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `another connection held the database locked too long (${code})`;
  }
  return `${error.message} (${code})`;
}

/**
 * The domain's {@link UnavailableError} for a storage failure: `the task store cannot write: the
 * disk is full (DATA_DIR /data)`. `doing` says what failed (`write`, `read`).
 */
export function storeUnavailable(error: SqliteError, dataDir: string, doing: string): UnavailableError {
  return new UnavailableError(
    `the task store cannot ${doing}: ${describeStorageError(error, dataDir)} (DATA_DIR ${dataDir})`,
    'store',
    STORE_RETRY_AFTER_MS,
  );
}

/** Why the store's database cannot be opened (or its tables made), naming DATA_DIR and the cause. */
export function cannotOpenStore(error: unknown, dataDir: string): Error {
  const cause = isStorageError(error)
    ? describeStorageError(error, dataDir)
    : error instanceof Error
      ? error.message
      : String(error);
  return new Error(`cannot open the task store in DATA_DIR ${dataDir}: ${cause}`, { cause: error });
}
