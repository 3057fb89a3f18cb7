import type { CursorStore } from './types.js';

/** The part of the Web Storage API the cursor store uses (`localStorage`, `sessionStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Cursors kept for the life of the client: a new page or process starts from `viewer.lastEventCursor`. */
export function createMemoryCursorStore(): CursorStore {
  const cursors = new Map<string, string>();
  return {
    get: (userId) => cursors.get(userId) ?? null,
    set: (userId, cursor) => {
      cursors.set(userId, cursor);
    },
  };
}

/**
 * Cursors in `storage` (default `localStorage`) under `<key>:<userId>`, so a reloaded page resumes
 * where the last one stopped. Storage that throws (private mode, quota) degrades to memory.
 */
export function createLocalStorageCursorStore(
  storage: StorageLike | undefined = (globalThis as { localStorage?: StorageLike }).localStorage,
  key = 'task-status-service:cursor',
): CursorStore {
  const fallback = createMemoryCursorStore();
  return {
    get(userId) {
      try {
        return storage?.getItem(`${key}:${userId}`) ?? fallback.get(userId);
      } catch {
        return fallback.get(userId);
      }
    },
    set(userId, cursor) {
      fallback.set(userId, cursor);
      try {
        storage?.setItem(`${key}:${userId}`, cursor);
      } catch {
        // Kept in memory: this page still resumes correctly, only a reload starts afresh.
      }
    },
  };
}
