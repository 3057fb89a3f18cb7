/**
 * A small filesystem of its own (a tmpfs mount) that the soak can fill to the last byte and give
 * back: the "full disk" fault for the embedded deployment's DATA_DIR.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A mounted tmpfs the soak owns. */
export interface SmallDisk {
  /** Where it is mounted: the DATA_DIR to give the service. */
  readonly dir: string;
  /** Writes a filler file until the filesystem has no byte left; resolves with the bytes written. */
  fill(): number;
  /** Deletes the filler: the space is back. */
  free(): void;
  /** Unmounts (the filler and everything on it go). */
  unmount(): void;
}

const CHUNK = Buffer.alloc(1 << 20);

/**
 * Mounts a tmpfs of `sizeMb` MB at a new directory under `parent`; `{ error }` saying why when this
 * process may not mount (mounting needs root or CAP_SYS_ADMIN).
 */
export function mountSmallDisk(parent: string, sizeMb: number): SmallDisk | { readonly error: string } {
  const dir = fs.mkdtempSync(path.join(parent, 'disk-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    const detail = error instanceof Error && 'stderr' in error ? String(error.stderr).trim() : String(error);
    return { error: `mount -t tmpfs failed (${detail || 'no permission?'})` };
  }
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill() {
      const fd = fs.openSync(filler, 'a');
      let written = 0;
      try {
        for (;;) {
          // Whole chunks first, then what a smaller write still finds room for.
          written += fs.writeSync(fd, CHUNK);
        }
      } catch {
        for (let size = 1 << 19; size >= 1; size >>= 1) {
          try {
            for (;;) written += fs.writeSync(fd, CHUNK, 0, size);
          } catch {
            // no room for this size: try a smaller one
          }
        }
      } finally {
        fs.closeSync(fd);
      }
      return written;
    },
    free() {
      fs.rmSync(filler, { force: true });
    },
    unmount() {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
