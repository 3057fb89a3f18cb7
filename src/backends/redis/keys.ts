/**
 * Characters a caller-given key part may not hold raw: `{` and `}` would move or end the
 * `{u:<userId>}` hash tag (and with it the slot, or let one user's id reach into another user's
 * keys), `%` is the escape itself, and control, format and separator characters (and lone
 * surrogates, which are not text) make keys that cannot be read or typed in `redis-cli`.
 */
const RAW_UNSAFE = /[%{}\p{Cc}\p{Cf}\p{Cs}\p{Z}]/gu;

function escapeCharacter(character: string): string {
  const code = character.charCodeAt(0);
  // encodeURIComponent throws on a lone surrogate; `%u` cannot be confused with a `%XX` byte.
  if (character.length === 1 && code >= 0xd800 && code <= 0xdfff) return `%u${code.toString(16)}`;
  return encodeURIComponent(character);
}

/**
 * A caller-given string (user id, idempotency key, task id) as it goes into a key:
 * percent-encoded where {@link RAW_UNSAFE} says, else unchanged.
 *
 * Percent-encoding rather than hashing: it is injective (`%` itself is encoded, so no two inputs
 * share a key), it leaves the ids and keys people actually use (`auth0|abc`, e-mail addresses,
 * UUIDs, `order:123`) exactly as before, so a deployment's existing data stays readable without
 * a migration, and keys stay readable for an operator. `:` stays raw: within `{u:…}` only `}`
 * ends the user id, and every caller-given part after the tag is the key's last part behind a
 * fixed word (`:idem:`, `:task:`), so a `:` can imitate no other key. Upgrading changes only the
 * keys of ids or idempotency keys holding the characters above (user ids with whitespace or control
 * characters are refused anyway): data stored under those before is not found after.
 */
export function keyPart(value: string): string {
  return value.replace(RAW_UNSAFE, escapeCharacter);
}

/**
 * Redis key names. Everything of one user (task hashes, task index, idempotency keys, event
 * stream) carries the hash tag `{u:<userId>}`, so one Lua script can touch them all, even on a
 * Redis Cluster. Keys without a user live in their own slots and are never used in the same script.
 * Every caller-given part goes through {@link keyPart}: no input reaches another key or moves a key
 * to another slot.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  #user(userId: string): string {
    return `${this.prefix}:{u:${keyPart(userId)}}`;
  }
  task(userId: string, taskId: string): string {
    return `${this.#user(userId)}:task:${keyPart(taskId)}`;
  }
  userIndex(userId: string): string {
    return `${this.#user(userId)}:tasks`;
  }
  idempotency(userId: string, key: string): string {
    return `${this.#user(userId)}:idem:${keyPart(key)}`;
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
    return `${this.prefix}:owner:{${keyPart(taskId)}}`;
  }
  /** Every task, for service callers listing all users. */
  allTasks(): string {
    return `${this.prefix}:tasks`;
  }
  /**
   * Tasks written but not yet known to be queued in BullMQ (`<userId>\n<taskId>`, scored by when
   * they were written): the transactional outbox a sweeper reads to queue what a failed or
   * interrupted start left without a job.
   */
  outbox(): string {
    return `${this.prefix}:outbox`;
  }
  /** The user's running tasks (task id, scored by when its worker's lease on it runs out). */
  running(userId: string): string {
    return `${this.#user(userId)}:running`;
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
  /** Epoch ms before which the user's tokens are revoked (`revokeUserConnections`). */
  revokedBefore(userId: string): string {
    return `${this.#user(userId)}:revoked-before`;
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
