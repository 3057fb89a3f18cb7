import type { TaskChange } from '../../tasks/ports.js';
import type { Task } from '../../tasks/task.js';

/** A claim limited per user: the change to apply, and the tasks it refused because of the cap. */
export interface CappedClaim {
  readonly change: TaskChange;
  readonly refused: Task[];
}

/**
 * MAX_RUNNING_PER_USER for the embedded runner: how many tasks of each user run now, and the due
 * task ids held back while their user is at the cap. A held id waits here — not in the runner's
 * due list, so it costs nothing while it waits and other users' tasks take the free slots — until
 * a task of its user ends, which hands the user's held ids back to be claimed.
 */
export class RunningPerUser {
  /** 0: no cap. */
  readonly #max: number;
  readonly #running = new Map<string, number>();
  readonly #held = new Map<string, Set<string>>();
  readonly #heldIds = new Set<string>();

  constructor(max: number) {
    this.#max = max;
  }

  /**
   * `claim`, refusing a task whose user already runs the cap (counting those this same claim took
   * before it); the refused tasks are listed, to {@link hold}.
   */
  limit(claim: TaskChange): CappedClaim {
    if (this.#max === 0) return { change: claim, refused: [] };
    const refused: Task[] = [];
    const taken = new Map<string, number>();
    const change: TaskChange = (task) => {
      const next = claim(task);
      if (!next) return null;
      const running = (this.#running.get(task.userId) ?? 0) + (taken.get(task.userId) ?? 0);
      if (running >= this.#max) {
        refused.push(task);
        return null;
      }
      taken.set(task.userId, (taken.get(task.userId) ?? 0) + 1);
      return next;
    };
    return { change, refused };
  }

  /** Whether `id` waits for its user's running tasks. */
  isHeld(id: string): boolean {
    return this.#heldIds.has(id);
  }

  /** Keeps `task`'s id until a task of its user ends. */
  hold(task: Task): void {
    let held = this.#held.get(task.userId);
    if (!held) {
      held = new Set();
      this.#held.set(task.userId, held);
    }
    held.add(task.id);
    this.#heldIds.add(task.id);
  }

  /** A task of `userId` started running. */
  started(userId: string): void {
    this.#running.set(userId, (this.#running.get(userId) ?? 0) + 1);
  }

  /** A task of `userId` ended; returns the user's held ids, no longer held, to claim again. */
  ended(userId: string): string[] {
    const running = (this.#running.get(userId) ?? 1) - 1;
    if (running > 0) this.#running.set(userId, running);
    else this.#running.delete(userId);
    const held = this.#held.get(userId);
    if (!held) return [];
    this.#held.delete(userId);
    for (const id of held) this.#heldIds.delete(id);
    return [...held];
  }
}
