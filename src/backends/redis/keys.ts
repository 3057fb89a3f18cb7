/**
 * Redis key names. Everything of one user (task hashes, task index, idempotency keys, event
 * stream) carries the hash tag `{u:<userId>}`, so one Lua script can touch them all, even on a
 * Redis Cluster. Keys without a user live in their own slots and are never used in the same script.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  #user(userId: string): string {
    return `${this.prefix}:{u:${userId}}`;
  }
  task(userId: string, taskId: string): string {
    return `${this.#user(userId)}:task:${taskId}`;
  }
  userIndex(userId: string): string {
    return `${this.#user(userId)}:tasks`;
  }
  idempotency(userId: string, key: string): string {
    return `${this.#user(userId)}:idem:${key}`;
  }
  events(userId: string): string {
    return `${this.#user(userId)}:events`;
  }
  /** Id of the newest event trimmed from the user's stream. */
  trimmed(userId: string): string {
    return `${this.#user(userId)}:events:trimmed`;
  }
  /** Pub/sub channel of one user's events. */
  live(userId: string): string {
    return `${this.#user(userId)}:live`;
  }
  /** Task id -> owner, so a task can be found by id alone. */
  owner(taskId: string): string {
    return `${this.prefix}:owner:{${taskId}}`;
  }
  /** Every task, for service callers listing all users. */
  allTasks(): string {
    return `${this.prefix}:tasks`;
  }
  /** Source of the task sequence numbers that order the indexes. */
  sequence(): string {
    return `${this.prefix}:seq`;
  }
  /** Channel on which cancellations reach whichever worker runs the task. */
  cancellations(): string {
    return `${this.prefix}:cancel`;
  }
  /** Channel of the messages between gateways (e.g. revoking a user's connections). */
  control(): string {
    return `${this.prefix}:control`;
  }
  /** Token bucket `name` of `key` (a user id), in that user's slot. */
  rateBucket(name: string, key: string): string {
    return `${this.#user(key)}:rate:${name}`;
  }
  /** BullMQ prefix: one hash tag, so each queue's keys share a cluster slot. */
  queuePrefix(): string {
    return `{${this.prefix}:q}`;
  }
}
