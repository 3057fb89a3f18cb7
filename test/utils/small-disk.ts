import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll } from 'vitest';
import { makeTempDir } from './tserver.js';

/** A small tmpfs to fill up: a real full disk for the embedded store. */
export interface SmallDisk {
  /** Where it is mounted: the DATA_DIR of the server under test. */
  readonly dir: string;
  /**
   * Fills the disk to the last byte. First the store's WAL is checkpointed and truncated to
   * nothing (through a connection of our own, while the server's keep the files open), so that
   * no write can reuse the room an earlier one left in it: every commit needs new space.
   */
  fill(): void;
  /** Gives the space back. */
  free(): void;
}

const mounted: string[] = [];
afterAll(() => {
  for (const dir of mounted.splice(0)) {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
  }
});

/**
 * Mounts a tmpfs of `sizeMb` on a fresh temp dir, unmounted after the file's tests; `null` when
 * mounting is not permitted here (then the caller skips — and fails when CI=true).
 */
export function mountSmallDisk(sizeMb = 4): SmallDisk | null {
  const dir = makeTempDir('tss-full-disk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    return null;
  }
  mounted.push(dir);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill() {
      const store = path.join(dir, 'tasks.sqlite');
      if (fs.existsSync(store)) {
        const db = new Database(store, { fileMustExist: true });
        try {
          db.pragma('busy_timeout = 5000');
          db.pragma('wal_checkpoint(TRUNCATE)');
        } finally {
          db.close();
        }
      }
      const fd = fs.openSync(filler, 'a');
      try {
        for (const size of [64 * 1024, 4096, 1]) {
          const chunk = Buffer.alloc(size);
          try {
            for (;;) fs.writeSync(fd, chunk);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
    },
    free() {
      fs.rmSync(filler, { force: true });
    },
  };
}

/** Whether a tmpfs can be mounted here (root, or a CI runner that allows it). */
export function canMountSmallDisk(): boolean {
  const disk = mountSmallDisk(1);
  return disk !== null;
}
