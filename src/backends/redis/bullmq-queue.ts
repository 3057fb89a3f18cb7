import { DelayedError, type Job, type JobState, Queue, Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import type { Logger } from '../../logger.js';
import { bullmqTelemetryOption } from '../../observability/tracing.js';
import { claimForRun } from '../../tasks/claims.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { TaskQueue, TaskRepository } from '../../tasks/ports.js';
import { type Task, TaskStatus } from '../../tasks/task.js';
import { executeTask } from '../../tasks/task-executor.js';
import type { RedisKeys } from './keys.js';
import { logWorkerError } from './lost-jobs.js';
import type { RedisClient } from './redis-connection.js';
import type { GuardedRedisPubSub } from './redis-pubsub.js';
import { asUnavailable } from './redis-unavailable.js';
import { RunningLeases } from './running-leases.js';
import { WorkerRuns } from './worker-runs.js';

export const QUEUE_NAME = 'tasks';

/** The id of the job of a task's queued period: the version changes with every transition. */
export function taskJobId(task: Pick<Task, 'id' | 'version'>): string {
  return `${task.id}-v${task.version}`;
}

/**
 * Every job's options. The task in the store keeps the history, so a job leaves nothing behind
 * once done (`removeOnComplete`); failed ones are kept for inspection, 1,000 at most.
 */
const JOB_OPTIONS = {
  removeOnComplete: true,
  removeOnFail: 1_000,
  attempts: 5,
  backoff: { type: 'exponential', delay: 500 },
} as const;

/**
 * BullMQ appends each job's lifecycle to an events stream for `QueueEvents` listeners; nothing
 * here listens, so the stream is kept short (BullMQ's default is 10,000 entries).
 */
const EVENTS_STREAM_LENGTH = 100;

interface RunJob {
  readonly taskId: string;
  /**
   * The task as it was queued: the worker claims it without reading it first while it is still
   * the stored version. Absent from jobs queued by earlier versions.
   */
  readonly task?: Task;
}

export interface BullmqQueueOptions {
  readonly client: RedisClient;
  /** Carries cancellations to whichever worker runs the task. */
  readonly channels: GuardedRedisPubSub;
  readonly keys: RedisKeys;
  readonly repository: TaskRepository;
  readonly kinds: KindRegistry;
  readonly logger: Logger;
  /**
   * Told of each batch whose jobs were added, e.g. to drop the tasks' enqueue-outbox entries
   * (the queue of the start path gets it; a worker's re-queued tasks have no entry).
   */
  readonly onEnqueued?: ((tasks: readonly Task[]) => void) | undefined;
  /**
   * Retry-After of the `UnavailableError` that {@link BullmqQueue.enqueue} throws when Redis could
   * not be reached (a fail-fast `client` refuses at once while disconnected). @default 1000
   */
  readonly unavailableRetryAfterMs?: number | undefined;
  /**
   * How long a worker's lock on a job lasts without renewal; a worker killed mid-task loses its
   * jobs to another worker after about this long. It is also how long a user's running slot
   * ({@link maxRunningPerUser}) outlives a killed worker. @default 30000
   */
  readonly lockDurationMs?: number;
  /**
   * `MAX_RUNNING_PER_USER`: tasks of one user running at once across the deployment; a job of a
   * user at the cap is postponed (no attempt spent) and other users' jobs run. 0: no cap. @default 0
   */
  readonly maxRunningPerUser?: number;
  /**
   * How often a worker reads its running tasks in the store, to stop those cancelled whose
   * cancellation message it missed, and renews its users' running slots.
   * @default min(5000, lockDurationMs / 2)
   */
  readonly runCheckMs?: number;
  /** How long a job of a user at the running cap waits before it is looked at again. @default 1000 */
  readonly capPostponeMs?: number;
}

/**
 * The distributed queue on BullMQ: one job per queued period of a task (a retry or a hand-back
 * is a new job). The task in the store is the truth; a job only says "look at this task".
 * A job found with its task still RUNNING means the worker that ran it died (BullMQ moved the
 * stalled job back): that attempt is over, and the task is retried or fails as INTERRUPTED.
 */
export class BullmqQueue implements TaskQueue {
  readonly #queue: Queue<RunJob>;
  readonly #options: BullmqQueueOptions;
  /** This process's runs; set by {@link start}. */
  #runs: WorkerRuns | undefined;
  #leases: RunningLeases | undefined;
  #worker: Worker<RunJob> | undefined;
  /** Connections made for BullMQ: it does not close a connection it was given, so close() does. */
  readonly #connections: RedisClient[] = [];
  #stopCancellations: (() => void) | undefined;

  constructor(options: BullmqQueueOptions) {
    this.#options = options;
    this.#queue = new Queue<RunJob>(QUEUE_NAME, {
      connection: this.#connection(),
      prefix: options.keys.queuePrefix(),
      streams: { events: { maxLen: EVENTS_STREAM_LENGTH } },
      ...bullmqTelemetryOption(),
    });
    this.#queue.on('error', (err) => options.logger.error('queue error', { err }));
  }

  /**
   * One job per task; a batch goes in one `addBulk` (one round trip). Adding a job whose id
   * (`<task id>-v<version>`) exists already does nothing, so queueing a task twice is harmless.
   */
  async enqueue(tasks: readonly Task[]): Promise<void> {
    const now = Date.now();
    const jobs = tasks.map((task) => ({
      name: 'run',
      data: { taskId: task.id, task },
      opts: {
        jobId: taskJobId(task),
        delay: Math.max(0, task.runAt - now),
        ...JOB_OPTIONS,
      },
    }));
    const [single] = jobs;
    try {
      if (jobs.length === 1 && single) await this.#queue.add(single.name, single.data, single.opts);
      else if (jobs.length > 1) await this.#queue.addBulk(jobs);
    } catch (error) {
      throw asUnavailable(error, 'queue', this.#options.unavailableRetryAfterMs ?? 1_000);
    }
    if (jobs.length > 0) this.#options.onEnqueued?.(tasks);
  }

  async cancel(taskId: string): Promise<void> {
    // The task id as JSON, as it has always been sent, so workers of every version understand it.
    await this.#options.channels.publish(this.#options.keys.cancellations(), taskId);
  }

  /** Starts a BullMQ worker running `concurrency` tasks at once in this process. */
  async start(concurrency: number): Promise<void> {
    if (concurrency === 0 || this.#worker) return;
    const { channels, keys, logger, lockDurationMs = 30_000, maxRunningPerUser = 0 } = this.#options;
    const { runCheckMs = Math.min(5_000, Math.floor(lockDurationMs / 2)) } = this.#options;
    // Leases on the store's connection: their scripts are defined there, and the checks of all
    // runs go out together with the rest of the process's commands.
    const leases = new RunningLeases({
      client: this.#options.client,
      keys,
      maxRunningPerUser,
      leaseMs: lockDurationMs,
    });
    const runs = new WorkerRuns({ leases, logger, checkEveryMs: runCheckMs });
    this.#leases = leases;
    this.#runs = runs;
    runs.start();
    this.#stopCancellations = await channels.subscribe(keys.cancellations(), (taskId) => {
      if (typeof taskId !== 'string') {
        logger.warn('dropped a malformed cancellation', { type: typeof taskId });
        return;
      }
      runs.abort(taskId, 'cancelled');
    });
    this.#worker = new Worker<RunJob>(QUEUE_NAME, (job, token) => this.#process(job, token), {
      connection: this.#connection(),
      prefix: keys.queuePrefix(),
      concurrency,
      lockDuration: lockDurationMs,
      stalledInterval: Math.max(1_000, Math.floor(lockDurationMs / 2)),
      maxStalledCount: 1_000,
      ...bullmqTelemetryOption(),
    });
    this.#worker.on('error', (err) => logWorkerError(logger, err));
    // A lock not renewed may be a job delivered again: the store says whether the run is still its.
    this.#worker.on('lockRenewalFailed', () => void runs.check());
    this.#worker.on('failed', (job, err) => logger.error('job failed', { jobId: job?.id, err }));
    await this.#worker.waitUntilReady();
  }

  async depth(): Promise<number> {
    const counts = await this.#queue.getJobCounts('waiting', 'delayed', 'prioritized');
    return Object.values(counts).reduce((sum, n) => sum + n, 0);
  }

  /** The state of job `jobId` (`'unknown'` when there is none). */
  jobState(jobId: string): Promise<JobState | 'unknown'> {
    return this.#queue.getJobState(jobId);
  }

  /** Removes job `jobId` (e.g. a failed one whose id a new add would otherwise find taken). */
  async removeJob(jobId: string): Promise<void> {
    await this.#queue.remove(jobId);
  }

  /** Resolves once the queue's own Redis connection answers. */
  async ping(): Promise<void> {
    await this.#queue.getJobCounts('waiting');
  }

  /**
   * Stops taking jobs and gives running tasks `graceMs` to finish; those still running then are
   * handed back to the queue. The queue itself stays open (tasks can still be enqueued).
   */
  async stopWorkers(graceMs = 0): Promise<void> {
    // Worker.close() stops fetching and resolves once the jobs in progress have finished.
    const closing = this.#worker?.close();
    if (closing && graceMs > 0 && (this.#runs?.size ?? 0) > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        closing,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.#runs?.abortAll('shutdown');
    await closing;
    this.#runs?.stop();
    this.#stopCancellations?.();
    this.#stopCancellations = undefined;
  }

  /** Hands running tasks back to the queue, then closes the worker and the queue. */
  async close(): Promise<void> {
    await this.stopWorkers(0);
    await this.#queue.close();
    await Promise.all(this.#connections.map((c) => c.quit().catch(() => c.disconnect())));
  }

  #connection(): RedisClient {
    // Without auto-pipelining: BullMQ's own command flow is not known to be safe with it
    // (taskforcesh/bullmq#457).
    const client = this.#options.client;
    const connection =
      client instanceof Cluster
        ? client.duplicate(undefined, { enableAutoPipelining: false })
        : client.duplicate({ enableAutoPipelining: false });
    this.#connections.push(connection);
    return connection;
  }

  async #process(job: Job<RunJob>, token: string | undefined): Promise<void> {
    const { repository, kinds, logger, capPostponeMs = 1_000 } = this.#options;
    const runs = this.#runs;
    const leases = this.#leases;
    if (!runs || !leases) return;
    const { taskId, task: queued } = job.data;
    if (runs.has(taskId)) return;
    // Jobs queued by earlier versions carry no task: its owner is read when a cap needs it.
    const userId = leases.capped
      ? (queued?.userId ?? (await repository.get(taskId))?.userId)
      : queued?.userId;
    if (leases.capped) {
      if (userId === undefined) return;
      if (!(await leases.take(userId, taskId))) {
        // Spread out the user's postponed jobs, so they do not all come back in the same instant.
        await job.moveToDelayed(
          Date.now() + capPostponeMs + Math.floor(Math.random() * capPostponeMs),
          token,
        );
        throw new DelayedError();
      }
    }
    let run: AbortController | undefined;
    try {
      // BullMQ counts every hand-out of the job (`attemptsStarted`, this one included).
      const own = queued ? { queued, redelivered: job.attemptsStarted > 1 } : undefined;
      const claimed = await repository.transition(taskId, claimForRun(kinds, Date.now(), own), queued);
      if (!claimed || claimed.task.status !== TaskStatus.Running) return;
      run = runs.add(claimed.task);
      const outcome = await executeTask(claimed.task, run, {
        repository,
        kinds,
        logger,
        queuedAt: job.timestamp,
      });
      if (outcome.type === 'retry') await this.enqueue([outcome.task]);
      if (outcome.type === 'handed-back') {
        const task = await repository.get(taskId);
        if (task?.status === TaskStatus.Queued) await this.enqueue([task]);
      }
    } finally {
      if (run) runs.delete(taskId);
      if (userId !== undefined) {
        await leases.release(userId, taskId).catch((err: unknown) => {
          // The lease runs out on its own; until then the user has one slot less.
          logger.warn('could not release a running slot', { taskId, err });
        });
      }
    }
  }
}
