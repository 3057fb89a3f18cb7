import type { JobState } from 'bullmq';
import type { Logger } from '../../logger.js';
import type { TaskChange, TaskRepository } from '../../tasks/ports.js';
import { type Task, TaskStatus } from '../../tasks/task.js';
import { taskJobId } from './bullmq-queue.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import { outboxMember } from './redis-repository.js';

/** Error code of a task failed by the sweeper: its start broke off before it was queued. */
export const START_FAILED = 'START_FAILED';

/** Job states in which the job will still run (or is running) its task. */
const LIVE_STATES: ReadonlySet<JobState | 'unknown'> = new Set([
  'active',
  'delayed',
  'prioritized',
  'waiting',
  'waiting-children',
]);

/** Outbox entries one sweep looks at, at most. */
const SWEEP_BATCH = 100;

/**
 * QUEUED -> FAILED with {@link START_FAILED}, only while the task is still the QUEUED `version`
 * the sweeper saw (a worker that claimed it meanwhile wins).
 */
export function startFailed(version: number, now: number): TaskChange {
  return (task) =>
    task.status === TaskStatus.Queued && task.version === version && !task.external
      ? {
          ...task,
          status: TaskStatus.Failed,
          finishedAt: now,
          error: {
            code: START_FAILED,
            message:
              'its start broke off before the task was queued (Redis did not answer in time, or the gateway stopped); ' +
              'the caller was not told of this task and it has no idempotency key to be found by, so it never runs: start it again',
          },
        }
      : null;
}

/** What the sweeper did with one outbox entry. */
export type SweepOutcome = 'dropped' | 'queued' | 'failed';

export interface EnqueueOutboxOptions {
  /** Reads and trims the outbox; its errors only postpone a sweep. */
  readonly client: RedisClient;
  /** Drops the entries of tasks just queued; a client that waits for Redis (a late drop is harmless). */
  readonly ackClient: RedisClient;
  /** Where the sweeper looks at jobs: the start path's queue. */
  readonly jobs: {
    jobState(jobId: string): Promise<JobState | 'unknown'>;
    removeJob(jobId: string): Promise<void>;
  };
  readonly keys: RedisKeys;
  /** Reads tasks and fails key-less orphans. */
  readonly repository: TaskRepository;
  /** Queues tasks (the start path's queue: it drops their entries once their jobs are added). */
  readonly enqueue: (tasks: readonly Task[]) => Promise<void>;
  readonly logger: Logger;
  /**
   * How old an entry must be before the sweeper looks at it: longer than a start takes at the
   * most (its command deadlines), so that the sweeper never acts on a start still under way.
   */
  readonly graceMs: number;
  /** How often this process sweeps. */
  readonly intervalMs: number;
}

/**
 * The transactional outbox of the start path. `createMany` writes an entry per task our workers
 * run (`<userId>\n<taskId>` in {@link RedisKeys.outbox}, scored by when it was written) in the
 * round before the task is created, so a task never exists without one until its job is queued;
 * {@link ack} drops the entries once the jobs are added, without the request waiting for it.
 *
 * A sweeper on every process with the queue reads the entries older than `graceMs` — left by a
 * job add that failed or timed out, by a gateway that stopped between the two writes, or by an
 * ack that was lost — and settles each: a task gone, final, running, external, or whose job still
 * waits or runs is only dropped; a QUEUED task without a live job is queued again when it has an
 * idempotency key (its caller finds it by repeating the start), and fails with
 * {@link START_FAILED} when it has none (its caller was told the start failed, or got no answer,
 * and has no way to find it: running it later would run work the caller may well start again).
 * Several sweepers may run at once: a job id names the task's version, so adding it twice adds one
 * job, and the failure is a version-checked transition.
 *
 * BullMQ has nothing of the kind: a job id makes an add idempotent, but nothing reconciles a
 * store outside BullMQ with the jobs that should exist.
 */
export class EnqueueOutbox {
  readonly #options: EnqueueOutboxOptions;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;
  #lastErrorLog = 0;

  constructor(options: EnqueueOutboxOptions) {
    this.#options = options;
  }

  /** Drops the entries of `tasks`, whose jobs were just added; not awaited by the start path. */
  ack(tasks: readonly Task[]): void {
    const members = tasks.map(outboxMember);
    if (members.length === 0) return;
    this.#options.ackClient
      .zrem(this.#options.keys.outbox(), ...members)
      .catch((err: unknown) => this.#logError('outbox entries not dropped (the sweeper will)', err));
  }

  /** Sweeps every `intervalMs` until {@link stop}. */
  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#sweeping) return;
      this.#sweeping = this.sweep()
        .catch((err: unknown) => this.#logError('outbox sweep failed', err))
        .finally(() => {
          this.#sweeping = undefined;
        });
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  /** Stops sweeping (waits for a sweep under way). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#sweeping;
  }

  /** Settles the entries older than the grace period (the oldest {@link SWEEP_BATCH}); returns what it did with each. */
  async sweep(now = Date.now()): Promise<SweepOutcome[]> {
    const { client, keys, graceMs } = this.#options;
    const members = await client.zrangebyscore(keys.outbox(), '-inf', now - graceMs, 'LIMIT', 0, SWEEP_BATCH);
    const outcomes = await Promise.all(
      members.map((member) =>
        this.#settle(member, now).catch((err: unknown) => {
          this.#logError('outbox entry not settled (next sweep)', err);
          return null;
        }),
      ),
    );
    return outcomes.filter((outcome): outcome is SweepOutcome => outcome !== null);
  }

  async #settle(member: string, now: number): Promise<SweepOutcome> {
    const { repository, logger } = this.#options;
    const taskId = member.slice(member.lastIndexOf('\n') + 1);
    const task = await repository.get(taskId);
    let outcome: SweepOutcome = 'dropped';
    if (task && task.status === TaskStatus.Queued && !task.external) {
      const jobId = taskJobId(task);
      const state = await this.#options.jobs.jobState(jobId);
      // A failed job keeps its id, and an add under that id would do nothing.
      if (state === 'failed') await this.#options.jobs.removeJob(jobId);
      // Read again after looking at the job: a worker may have claimed the task and finished its
      // job in between, and then the job's absence means nothing.
      const current = LIVE_STATES.has(state) ? null : await repository.get(taskId);
      if (current?.status === TaskStatus.Queued && current.version === task.version) {
        if (current.idempotencyKey !== null) {
          await this.#options.enqueue([current]);
          outcome = 'queued';
        } else if (await repository.transition(taskId, startFailed(current.version, now), current)) {
          outcome = 'failed';
        }
        logger.warn('outbox: settled a task that its start left without a job', {
          taskId,
          userId: current.userId,
          outcome,
        });
      }
    }
    await this.#options.client.zrem(this.#options.keys.outbox(), member);
    return outcome;
  }

  #logError(msg: string, err: unknown): void {
    // Redis being away makes every sweep fail the same way: one line every 5 s is enough.
    if (Date.now() - this.#lastErrorLog < 5_000) return;
    this.#lastErrorLog = Date.now();
    this.#options.logger.warn(msg, { err });
  }
}
