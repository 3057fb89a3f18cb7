import type { Task } from '../../tasks/task.js';
import type { Purged } from '../retention-schedule.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import { STREAM_ID_ORDER } from './scripts.js';

/** Entries of the index of every task read per batch. */
const BATCH = 200;
/** Batches per sweep: a large backlog is worked off over several sweeps. */
const BATCHES_PER_SWEEP = 25;

/**
 * KEYS: user index, user stream, trimmed marker, then per task: task hash, idempotency key (or the
 * user index when the task has none).
 * ARGV: cutoff (epoch ms), then per task: task id, has idempotency key (1/0).
 * Deletes each task that is still final and finished before the cutoff (re-read here, so several
 * sweepers, or one that read a stale copy, cannot delete anything else), its index entry and its
 * idempotency key (when that still names it), then trims the user's events appended before the
 * cutoff: the stream keeps its newest entry (its id is the user's last cursor) and the trimmed
 * marker moves past what went, so an older cursor gets CURSOR_EXPIRED. Returns the ids deleted.
 */
const PURGE_TASKS = `
${STREAM_ID_ORDER}local final = { SUCCEEDED = true, FAILED = true, CANCELLED = true }
local cutoff = tonumber(ARGV[1])
local deleted = {}
for i = 1, (#KEYS - 3) / 2 do
  local hash = KEYS[2 + 2 * i]
  local idem = KEYS[3 + 2 * i]
  local id = ARGV[2 * i]
  local data = redis.call('HGET', hash, 'd')
  if data then
    local task = cjson.decode(data)
    if final[task.status] and type(task.finishedAt) == 'number' and task.finishedAt < cutoff then
      redis.call('DEL', hash)
      redis.call('ZREM', KEYS[1], id)
      if ARGV[2 * i + 1] == '1' and redis.call('GET', idem) == id then redis.call('DEL', idem) end
      deleted[#deleted + 1] = id
    end
  end
end
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #newest > 0 then
  local keep = cutoff .. '-0'
  if less(newest[1][1], keep) then keep = newest[1][1] end
  local older = redis.call('XREVRANGE', KEYS[2], '(' .. keep, '-', 'COUNT', 1)
  if #older > 0 then
    local trimmed = redis.call('GET', KEYS[3])
    if not trimmed or less(trimmed, older[1][1]) then redis.call('SET', KEYS[3], older[1][1]) end
    redis.call('XTRIM', KEYS[2], 'MINID', keep)
  end
end
return deleted
`;

interface RetentionCommands {
  tssPurgeTasks(numberOfKeys: number, ...args: (string | number)[]): Promise<string[]>;
}

export interface RedisRetentionOptions {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  /** `TASK_RETENTION`: finished tasks and events older than this are purged. */
  readonly retentionMs: number;
}

interface IndexEntry {
  readonly member: string;
  readonly seq: number;
  readonly userId: string;
  readonly taskId: string;
}

/**
 * TASK_RETENTION in Redis: a sweep walks the index of every task (oldest first, from where the
 * last sweep stopped) and purges, one script per user, the tasks that finished before the cutoff
 * and the user's events appended before it; then their entries in the index of every task and
 * their owner keys (other slots). Every process may sweep: the script re-checks each task, and
 * removing what is gone already is harmless. Each sweep (run by a `RetentionSchedule`) reads at
 * most {@link BATCHES_PER_SWEEP} batches of {@link BATCH}.
 *
 * A sweep stops at the first task created after the cutoff: later ones cannot have finished
 * before it. Tasks still running or queued are stepped over and looked at again next round.
 */
export class RedisRetention {
  readonly #client: RedisClient & RetentionCommands;
  readonly #keys: RedisKeys;
  readonly #retentionMs: number;
  /** Sequence number after which the next batch starts ('-inf': from the oldest). */
  #after = '-inf';

  constructor({ client, keys, retentionMs }: RedisRetentionOptions) {
    client.defineCommand('tssPurgeTasks', { lua: PURGE_TASKS });
    this.#client = client as RedisClient & RetentionCommands;
    this.#keys = keys;
    this.#retentionMs = retentionMs;
  }

  /** One sweep (bounded) of what is past the retention at `now`; resolves with how many tasks it purged. */
  async sweep(now = Date.now()): Promise<number> {
    return (await this.purgeBefore(now - this.#retentionMs, () => false)).tasks;
  }

  /** One sweep (bounded) of the tasks finished before `cutoff`, stopping between batches once `stopped()`. */
  async purgeBefore(cutoff: number, stopped: () => boolean): Promise<Purged> {
    let purged = 0;
    for (let batch = 0; batch < BATCHES_PER_SWEEP && !stopped(); batch++) {
      const { purged: count, done } = await this.#batch(cutoff);
      purged += count;
      if (done) {
        this.#after = '-inf';
        break;
      }
    }
    return { tasks: purged };
  }

  async #batch(cutoff: number): Promise<{ purged: number; done: boolean }> {
    const keys = this.#keys;
    const start = this.#after === '-inf' ? '-inf' : `(${this.#after}`;
    const reply = await this.#client.zrangebyscore(
      keys.allTasks(),
      start,
      '+inf',
      'WITHSCORES',
      'LIMIT',
      0,
      BATCH,
    );
    const entries: IndexEntry[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const member = reply[i] as string;
      const [userId = '', taskId = ''] = member.split('\n');
      entries.push({ member, seq: Number(reply[i + 1]), userId, taskId });
    }
    const tasks = await Promise.all(
      entries.map(async ({ userId, taskId }) => {
        const data = await this.#client.hget(keys.task(userId, taskId), 'd');
        return data === null ? null : (JSON.parse(data) as Task);
      }),
    );
    let done = entries.length < BATCH;
    const due = new Map<string, Task[]>();
    const orphans: IndexEntry[] = [];
    let lastOld = -1;
    for (const [i, entry] of entries.entries()) {
      const task = tasks[i] ?? null;
      if (task !== null && task.createdAt >= cutoff) {
        done = true;
        break;
      }
      this.#after = String(entry.seq);
      if (task === null) {
        orphans.push(entry);
        continue;
      }
      lastOld = entry.seq;
      if (task.finishedAt !== null && task.finishedAt < cutoff) {
        due.set(task.userId, [...(due.get(task.userId) ?? []), task]);
      }
    }
    const purged = await Promise.all(
      [...due].map(([userId, userTasks]) => this.#purge(userId, userTasks, cutoff)),
    );
    // An entry without its task is what a purge interrupted between its steps leaves, or a task
    // being created right now; a later entry of a task created before the cutoff rules out the latter.
    const stale = orphans.filter((entry) => entry.seq < lastOld);
    await Promise.all(stale.map((entry) => this.#forget(entry.userId, entry.taskId)));
    return { purged: purged.reduce((sum, n) => sum + n, 0), done };
  }

  async #purge(userId: string, tasks: readonly Task[], cutoff: number): Promise<number> {
    const keys = this.#keys;
    const taskKeys = tasks.flatMap((task) => [
      keys.task(userId, task.id),
      task.idempotencyKey === null ? keys.userIndex(userId) : keys.idempotency(userId, task.idempotencyKey),
    ]);
    const taskArgs = tasks.flatMap((task) => [task.id, task.idempotencyKey === null ? '0' : '1']);
    const deleted = await this.#client.tssPurgeTasks(
      3 + taskKeys.length,
      keys.userIndex(userId),
      keys.events(userId),
      keys.trimmed(userId),
      ...taskKeys,
      cutoff,
      ...taskArgs,
    );
    await Promise.all(deleted.map((taskId) => this.#forget(userId, taskId)));
    return deleted.length;
  }

  /** Removes what of a task lives outside its user's slot: its entry in every task's index, its owner key. */
  async #forget(userId: string, taskId: string): Promise<void> {
    await Promise.all([
      this.#client.zrem(this.#keys.allTasks(), `${userId}\n${taskId}`),
      this.#client.del(this.#keys.owner(taskId)),
    ]);
  }
}
