import type { LiveBus } from '../../tasks/ports.js';
import type { TaskEvent } from '../../tasks/task.js';

/** In-process live bus: one listener set per user, dispatched synchronously. */
export class MemoryBus implements LiveBus {
  readonly #listeners = new Map<string, Set<(event: TaskEvent) => void>>();

  async subscribe(userId: string, listener: (event: TaskEvent) => void): Promise<() => void> {
    const set = this.#listeners.get(userId) ?? new Set();
    this.#listeners.set(userId, set);
    // A wrapper per subscription, so the same function subscribed twice is two subscriptions.
    const entry = (event: TaskEvent) => listener(event);
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.#listeners.get(userId) === set) this.#listeners.delete(userId);
    };
  }

  publish(event: TaskEvent): void {
    const set = this.#listeners.get(event.task.userId);
    if (!set) return;
    for (const listener of set) listener(event);
  }
}
