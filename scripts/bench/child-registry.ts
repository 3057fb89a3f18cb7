/** Every child process and cleanup of a bench run, so that a signal or a crash can end them all. */
import type { SpawnedChild } from './sys.js';

export const children = new Set<SpawnedChild>();
export const cleanups: (() => Promise<void>)[] = [];

/** SIGKILLs every child still running, then runs every pending cleanup. */
export async function stopEverything(): Promise<void> {
  for (const child of children) if (!child.hasExited()) child.child.kill('SIGKILL');
  await Promise.allSettled(cleanups.map((cleanup) => cleanup()));
}
