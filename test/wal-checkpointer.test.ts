import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../scripts/lib/local.js';
import { openStoreDatabase } from '../src/backends/embedded/sqlite-file.js';
import { WalCheckpointer } from '../src/backends/embedded/wal-checkpointer.js';
import { createLogger } from '../src/logger.js';
import { waitFor } from './utils/deferred.js';

/** WAL checkpoints by a worker thread, against a real store file. */

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('WalCheckpointer', () => {
  it('copies what commits left in the WAL into the database file without any commit checkpointing', async () => {
    const dataDir = makeTempDir('tss-wal-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const db = openStoreDatabase(dataDir);
    cleanups.push(() => {
      db.close();
    });
    db.exec('CREATE TABLE blobs (data BLOB NOT NULL)');
    const file = path.join(dataDir, 'tasks.sqlite');
    const lines: string[] = [];
    const checkpointer = new WalCheckpointer(
      file,
      createLogger('warn', (line) => lines.push(line)),
    );
    cleanups.push(() => checkpointer.close());

    const before = fs.statSync(file).size;
    // About 2 MB in many small commits: far below the safety net, so no commit checkpoints.
    const insert = db.prepare<[Buffer]>('INSERT INTO blobs (data) VALUES (?)');
    for (let i = 0; i < 500; i++) insert.run(Buffer.alloc(4_000, i % 256));
    expect(fs.statSync(file).size).toBe(before);

    await waitFor(() => fs.statSync(file).size > before + 1_500_000, 'the checkpoint thread', 10_000);
    expect(lines).toEqual([]);
    expect(db.prepare<[], { n: number }>('SELECT count(*) AS n FROM blobs').get()?.n).toBe(500);
  });

  it('closes its connection and ends its thread', async () => {
    const dataDir = makeTempDir('tss-wal-');
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const db = openStoreDatabase(dataDir);
    cleanups.push(() => {
      db.close();
    });
    const checkpointer = new WalCheckpointer(path.join(dataDir, 'tasks.sqlite'), createLogger('warn'));
    await checkpointer.close();
    // The file is no longer held by the thread: the last connection may remove the WAL on close.
    db.close();
    cleanups.pop();
    expect(fs.existsSync(path.join(dataDir, 'tasks.sqlite-wal'))).toBe(false);
  });
});
