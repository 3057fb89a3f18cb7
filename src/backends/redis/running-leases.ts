import type { Task } from '../../tasks/task.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';

/**
 * Leases on the running slots of each user (`MAX_RUNNING_PER_USER`), shared by every worker of the
 * deployment: a ZSET per user (in the user's slot) of the ids of the user's running tasks, each
 * scored by when its worker's lease runs out (the Redis server's clock, so workers with skewed
 * clocks agree). A worker renews its leases while it runs them; a worker that dies stops renewing,
 * and its user's slots come free once the leases run out. The ZSET itself expires with its last
 * lease, so a user who stopped running tasks leaves nothing behind.
 *
 * BullMQ's own limits do not fit: its rate limiter and global concurrency are per queue, and
 * per-group concurrency is a BullMQ Pro feature.
 */

/**
 * KEYS: the user's running ZSET. ARGV: task id, lease ms, cap.
 * Drops expired leases, then takes (or renews) the task's lease when the task holds one already
 * or fewer than `cap` do. Returns 1 when taken, 0 when the user is at the cap.
 */
const TAKE_RUNNING_SLOT = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease)
  return 1
end
return 0
`;

/**
 * KEYS: the user's running ZSET, the task hash. ARGV: task id, lease ms, renew (1/0).
 * Renews the task's lease (when `renew`) and returns the task as stored (nil when it is gone): one
 * round trip per running task both keeps its slot and tells the worker whether it was cancelled.
 */
const CHECK_RUN = `
if ARGV[3] == '1' then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local lease = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], lease)
end
return redis.call('HGET', KEYS[2], 'd')
`;

interface LeaseCommands {
  tssTakeRunningSlot(key: string, taskId: string, leaseMs: number, cap: number): Promise<number>;
  tssCheckRun(
    running: string,
    task: string,
    taskId: string,
    leaseMs: number,
    renew: string,
  ): Promise<string | null>;
}

/** A task this worker runs, as {@link RunningLeases.check} needs it. */
export interface LeasedRun {
  readonly userId: string;
  readonly taskId: string;
}

export interface RunningLeasesOptions {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  /** Tasks of one user running at once across the deployment; 0: no cap (and no leases). */
  readonly maxRunningPerUser: number;
  /** How long a lease lasts without renewal. */
  readonly leaseMs: number;
}

/** See the module comment. */
export class RunningLeases {
  readonly #client: RedisClient & LeaseCommands;
  readonly #keys: RedisKeys;
  readonly #cap: number;
  readonly #leaseMs: number;

  constructor({ client, keys, maxRunningPerUser, leaseMs }: RunningLeasesOptions) {
    client.defineCommand('tssTakeRunningSlot', { numberOfKeys: 1, lua: TAKE_RUNNING_SLOT });
    client.defineCommand('tssCheckRun', { numberOfKeys: 2, lua: CHECK_RUN });
    this.#client = client as RedisClient & LeaseCommands;
    this.#keys = keys;
    this.#cap = maxRunningPerUser;
    this.#leaseMs = leaseMs;
  }

  /** Whether a cap applies (else every call but {@link check} does nothing). */
  get capped(): boolean {
    return this.#cap > 0;
  }

  /** Takes one of the user's running slots for the task; false when the user is at the cap. */
  async take(userId: string, taskId: string): Promise<boolean> {
    if (!this.capped) return true;
    const taken = await this.#client.tssTakeRunningSlot(
      this.#keys.running(userId),
      taskId,
      this.#leaseMs,
      this.#cap,
    );
    return taken === 1;
  }

  /** Gives the task's slot back (its run ended, or it was never run). */
  async release(userId: string, taskId: string): Promise<void> {
    if (!this.capped) return;
    await this.#client.zrem(this.#keys.running(userId), taskId);
  }

  /**
   * Renews the leases of `runs` and reads their tasks as stored, all sent at once (the client
   * pipelines them); `null` for a task that is gone.
   */
  async check(runs: readonly LeasedRun[]): Promise<(Task | null)[]> {
    const renew = this.capped ? '1' : '0';
    const replies = await Promise.all(
      runs.map(({ userId, taskId }) =>
        this.#client.tssCheckRun(
          this.#keys.running(userId),
          this.#keys.task(userId, taskId),
          taskId,
          this.#leaseMs,
          renew,
        ),
      ),
    );
    return replies.map((data) => (data === null ? null : (JSON.parse(data) as Task)));
  }
}
