import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { CursorExpiredError, UnavailableError } from '../../tasks/errors.js';
import { decodeTaskCursor, encodeTaskCursor, notAPageCursor } from '../../tasks/page-cursor.js';
import type {
  CreateOutcome,
  ReadEventsOptions,
  TaskChange,
  TaskEventObserver,
  TaskListQuery,
  TaskPage,
  TaskRepository,
} from '../../tasks/ports.js';
import { isFinal, type Task, type TaskEvent } from '../../tasks/task.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import { CREATE_TASK, READ_EVENTS, TRANSITION_TASK } from './scripts.js';
import { entryToEvent, parseStreamId, START_OF_LOG, type StreamEntry } from './stream-entries.js';

/** A transition that lost the race to another writer is retried this many times. */
const MAX_CAS_ATTEMPTS = 50;

interface ScriptCommands {
  tssCreateTask(...args: (string | number)[]): Promise<[number, string]>;
  tssTransitionTask(...args: (string | number)[]): Promise<string | null>;
  tssReadEvents(...args: (string | number)[]): Promise<['expired'] | ['ok', StreamEntry[]]>;
}

export interface RedisRepositoryOptions {
  readonly client: RedisClient;
  readonly keys: RedisKeys;
  readonly eventRetention: number;
  /** Told of each event this process appends (metrics, logs). */
  readonly observe?: TaskEventObserver | undefined;
  /**
   * Greater than 0: a create script that reaches Redis more than this many ms after the batch's
   * first round did (both by the Redis server's clock) creates nothing, and `createMany` throws
   * {@link UnavailableError}: a start its gateway gave up on (a command timeout) is not carried out
   * when a delayed write finally arrives. @default 0
   */
  readonly createDeadlineMs?: number;
}

/** Member of the outbox ({@link RedisKeys.outbox}) for a task. */
export function outboxMember(task: Pick<Task, 'userId' | 'id'>): string {
  return `${task.userId}\n${task.id}`;
}

/**
 * Tasks as Redis hashes, each user's event log as a Redis Stream whose ids are the cursors, and
 * each transition one Lua script that also publishes the event on the user's channel.
 */
/** Owners remembered per repository (about 150 bytes each). */
const OWNER_CACHE_SIZE = 50_000;

export class RedisRepository implements TaskRepository {
  readonly #client: RedisClient & ScriptCommands;
  readonly #keys: RedisKeys;
  readonly #retention: number;
  /**
   * Task id -> owner, for tasks this process created or looked up: a task's owner never changes,
   * and a worker transitions the same task several times, so most transitions skip the GET.
   */
  readonly #owners = new LRUCache<string, string>({ max: OWNER_CACHE_SIZE });
  readonly #observe: TaskEventObserver | undefined;
  readonly #createDeadlineMs: number;

  constructor({ client, keys, eventRetention, observe, createDeadlineMs = 0 }: RedisRepositoryOptions) {
    client.defineCommand('tssCreateTask', { numberOfKeys: 5, lua: CREATE_TASK });
    client.defineCommand('tssTransitionTask', { numberOfKeys: 3, lua: TRANSITION_TASK });
    client.defineCommand('tssReadEvents', { numberOfKeys: 2, lua: READ_EVENTS });
    this.#client = client as RedisClient & ScriptCommands;
    this.#keys = keys;
    this.#retention = eventRetention;
    this.#observe = observe;
    this.#createDeadlineMs = createDeadlineMs;
  }

  /**
   * Two rounds of commands, sent together within each round (the client pipelines what one turn
   * of the event loop sends, per Redis node): the owner keys, one INCRBY for the batch's sequence
   * numbers, one ZADD of the tasks our workers run to the enqueue outbox (see `EnqueueOutbox`) and,
   * with a create deadline, the Redis server's TIME; then each task's create script and one ZADD of
   * the batch to the index of every task. The outbox entry is written before the task exists, so
   * no task is ever stored without one until its job is queued. Tasks whose idempotency key was
   * taken get their owner key, index and outbox entries back out.
   */
  async createMany(tasks: readonly Task[]): Promise<CreateOutcome[]> {
    if (tasks.length === 0) return [];
    const keys = this.#keys;
    const run = tasks.filter((task) => !task.external);
    // The owner keys are written first so that each task is findable by id as soon as it exists.
    const [last, time] = await Promise.all([
      this.#client.incrby(keys.sequence(), tasks.length),
      this.#createDeadlineMs > 0 ? this.#client.time() : null,
      run.length > 0
        ? this.#client.zadd(keys.outbox(), ...run.flatMap((task) => [Date.now(), outboxMember(task)]))
        : null,
      ...tasks.map((task) => this.#client.set(keys.owner(task.id), task.userId)),
    ]);
    const deadline =
      time === null
        ? 0
        : Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000) + this.#createDeadlineMs;
    const firstSeq = last - tasks.length + 1;
    const appendedAt = Date.now();
    const index = tasks.flatMap((task, i) => [firstSeq + i, outboxMember(task)]);
    const [replies] = await Promise.all([
      Promise.all(tasks.map((task, i) => this.#createScript(task, firstSeq + i, appendedAt, deadline))),
      this.#client.zadd(keys.allTasks(), ...index),
    ]);
    const late = tasks.filter((_task, i) => replies[i]?.[0] === -1);
    if (late.length > 0) {
      // Nothing of these tasks exists: their other keys go (should that fail, the outbox sweeper
      // drops the entries, and an index or owner entry without its task is skipped by readers).
      this.#forget(late).catch(() => undefined);
      throw new UnavailableError(
        `store: the create reached Redis more than ${this.#createDeadlineMs} ms after the start began; nothing was created for ${late.length} of ${tasks.length} tasks`,
        'store',
        this.#createDeadlineMs,
      );
    }
    return Promise.all(
      tasks.map(async (task, i): Promise<CreateOutcome> => {
        const [created, value] = replies[i] ?? [0, ''];
        // ioredis re-sends a script whose reply a dropped connection lost: if the first run
        // created the task, the second finds this very task (by its hash or its idempotency key).
        if (created === 1 || value === task.id) {
          this.#owners.set(task.id, task.userId);
          if (created === 1) this.#observe?.({ cursor: value, task, appendedAt }, null);
          return { task, created: true };
        }
        await this.#forget([task]);
        const existing = await this.get(value);
        if (!existing) throw new Error(`idempotency key points to missing task ${value}`);
        return { task: existing, created: false };
      }),
    );
  }

  /** Removes the owner key, index entry and outbox entry of tasks that were not created. */
  async #forget(tasks: readonly Task[]): Promise<void> {
    const keys = this.#keys;
    const members = tasks.map(outboxMember);
    await Promise.all([
      ...tasks.map((task) => this.#client.del(keys.owner(task.id))),
      this.#client.zrem(keys.allTasks(), ...members),
      this.#client.zrem(keys.outbox(), ...members),
    ]);
  }

  #createScript(task: Task, seq: number, appendedAt: number, deadline: number): Promise<[number, string]> {
    const keys = this.#keys;
    return this.#client.tssCreateTask(
      keys.task(task.userId, task.id),
      keys.userIndex(task.userId),
      keys.events(task.userId),
      keys.trimmed(task.userId),
      task.idempotencyKey === null
        ? keys.userIndex(task.userId)
        : keys.idempotency(task.userId, task.idempotencyKey),
      JSON.stringify(task),
      task.id,
      seq,
      this.#retention,
      keys.live(task.userId),
      task.idempotencyKey === null ? '0' : '1',
      appendedAt,
      deadline,
    );
  }

  async findByIdempotencyKey(userId: string, key: string): Promise<Task | null> {
    const id = await this.#client.get(this.#keys.idempotency(userId, key));
    return id === null ? null : this.#read(userId, id);
  }

  /** The owner of task `id`, from the cache or the owner key; null when there is no such task. */
  async #ownerOf(id: string): Promise<string | null> {
    const cached = this.#owners.get(id);
    if (cached !== undefined) return cached;
    const userId = await this.#client.get(this.#keys.owner(id));
    if (userId !== null) this.#owners.set(id, userId);
    return userId;
  }

  async get(id: string): Promise<Task | null> {
    const userId = await this.#ownerOf(id);
    if (userId === null) return null;
    return this.#read(userId, id);
  }

  async list({ userId, statuses, first, after }: TaskListQuery): Promise<TaskPage> {
    const index = userId === undefined ? this.#keys.allTasks() : this.#keys.userIndex(userId);
    let max = after === undefined ? '+inf' : `(${await this.#pageSeq(after, userId)}`;
    const wanted = statuses && statuses.length > 0 ? new Set(statuses) : null;
    const found: { task: Task; seq: number }[] = [];
    const batch = Math.max(first + 1, 50);
    while (found.length <= first) {
      const members = await this.#client.zrevrangebyscore(
        index,
        max,
        '-inf',
        'WITHSCORES',
        'LIMIT',
        0,
        batch,
      );
      if (members.length === 0) break;
      const refs: { userId: string; taskId: string; seq: number }[] = [];
      for (let i = 0; i + 1 < members.length; i += 2) {
        const member = members[i] as string;
        const seq = Number(members[i + 1]);
        const [owner, taskId] = userId === undefined ? member.split('\n') : [userId, member];
        refs.push({ userId: owner ?? '', taskId: taskId ?? '', seq });
      }
      const tasks = await Promise.all(refs.map((ref) => this.#read(ref.userId, ref.taskId)));
      tasks.forEach((task, i) => {
        const ref = refs[i];
        if (task && ref && (!wanted || wanted.has(task.status))) found.push({ task, seq: ref.seq });
      });
      max = `(${refs.at(-1)?.seq ?? 0}`;
      if (members.length < batch * 2) break;
    }
    const page = found.slice(0, first);
    return {
      tasks: page.map((entry) => entry.task),
      cursors: page.map((entry) => encodeTaskCursor(entry.task.id)),
      hasNextPage: found.length > first,
    };
  }

  /**
   * Reads the task, applies `change` and writes it with a version check, again while another
   * writer got there first. With `seen`, the first attempt applies `change` to it without reading:
   * one round trip less when it is still current (the usual case for a worker).
   */
  async transition(id: string, change: TaskChange, seen?: Task): Promise<TaskEvent | null> {
    let guess = seen?.id === id ? seen : undefined;
    const userId = guess?.userId ?? (await this.#ownerOf(id));
    if (userId === null) return null;
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const guessed = guess !== undefined;
      const current = guess ?? (await this.#read(userId, id));
      guess = undefined;
      if (!current) return null;
      const next = change(current);
      // Nothing to do to the task as seen: the stored one decides.
      if (!next && guessed) continue;
      if (!next) return null;
      const stored: Task = { ...next, version: current.version + 1 };
      const appendedAt = Date.now();
      const cursor = await this.#client.tssTransitionTask(
        this.#keys.task(userId, id),
        this.#keys.events(userId),
        this.#keys.trimmed(userId),
        current.version,
        JSON.stringify(stored),
        stored.version,
        this.#retention,
        this.#keys.live(userId),
        isFinal(stored.status) ? '1' : '0',
        appendedAt,
        randomUUID(),
      );
      if (cursor !== null) {
        const event: TaskEvent = { cursor, task: stored, appendedAt };
        this.#observe?.(event, current.status);
        return event;
      }
    }
    throw new Error(`task ${id}: gave up after ${MAX_CAS_ATTEMPTS} conflicting writes`);
  }

  async readEvents(userId: string, after: string | null, { finalOnly, limit }: ReadEventsOptions) {
    if (after !== null) parseStreamId(after);
    const events: TaskEvent[] = [];
    let from = after ?? '';
    const pageSize = Math.max(limit, 100);
    while (events.length < limit) {
      const reply = await this.#client.tssReadEvents(
        this.#keys.events(userId),
        this.#keys.trimmed(userId),
        from,
        pageSize,
      );
      if (reply[0] === 'expired') {
        throw new CursorExpiredError(`cursor ${after} is outside the retained event log`);
      }
      const entries = reply[1];
      for (const entry of entries) {
        const event = entryToEvent(entry);
        if (!finalOnly || event.final) {
          const { final: _final, ...logged } = event;
          events.push(logged);
        }
        if (events.length === limit) break;
      }
      const last = entries.at(-1);
      if (!last || entries.length < pageSize) break;
      from = last[0];
    }
    return events;
  }

  async lastCursor(userId: string): Promise<string> {
    const [last] = (await this.#client.xrevrange(
      this.#keys.events(userId),
      '+',
      '-',
      'COUNT',
      1,
    )) as StreamEntry[];
    return last ? last[0] : START_OF_LOG;
  }

  compareCursors(a: string, b: string): number {
    const [am, as] = parseStreamId(a);
    const [bm, bs] = parseStreamId(b);
    return am !== bm ? am - bm : as - bs;
  }

  assertCursor(cursor: string): void {
    parseStreamId(cursor);
  }

  /** The place in the index a page cursor stands for: its task's, of the user listed (when one is). */
  async #pageSeq(cursor: string, userId: string | undefined): Promise<number> {
    const decoded = decodeTaskCursor(cursor);
    if (decoded.form === 'seq') {
      if (userId !== undefined) throw notAPageCursor(cursor);
      return decoded.seq;
    }
    const owner = await this.#ownerOf(decoded.id);
    if (owner === null || (userId !== undefined && owner !== userId)) throw notAPageCursor(cursor);
    const score =
      userId === undefined
        ? await this.#client.zscore(this.#keys.allTasks(), `${owner}\n${decoded.id}`)
        : await this.#client.zscore(this.#keys.userIndex(owner), decoded.id);
    if (score === null) throw notAPageCursor(cursor);
    return Number(score);
  }

  async #read(userId: string, id: string): Promise<Task | null> {
    const data = await this.#client.hget(this.#keys.task(userId, id), 'd');
    return data === null ? null : (JSON.parse(data) as Task);
  }
}
