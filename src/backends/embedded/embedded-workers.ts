import { AsyncResource } from 'node:async_hooks';
import { MAX_TIMER_MS } from '../../lib/timers.js';
import type { Logger } from '../../logger.js';
import { recoverInterrupted } from '../../tasks/claims.js';
import { UnavailableError } from '../../tasks/errors.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { TaskChange, TaskQueue, TaskRepository } from '../../tasks/ports.js';
import type { Task } from '../../tasks/task.js';
import { type AbortCause, executeTask } from '../../tasks/task-executor.js';
import * as transitions from '../../tasks/transitions.js';
import { retryingTransitions } from './retrying-writes.js';
import { RunningPerUser } from './running-per-user.js';
import type { SqliteRepository } from './sqlite-repository.js';

/**
 * How often the store is searched for due tasks the runner does not hold (those queued before a
 * restart, and a safety net): one query per interval, never one per task.
 */
const SWEEP_INTERVAL_MS = 5_000;
/** Due task ids read from the store per search. */
const SWEEP_BATCH = 1_000;

/**
 * The embedded queue: the SQLite store is the truth, and the runner keeps the ids of the tasks it
 * was told are due. `enqueue` adds them (a retry at its `runAt`, by a timer), the pump claims as
 * many as there are free slots by id in one transaction and runs them in this process. The store is
 * searched only at start, every {@link SWEEP_INTERVAL_MS}, and when the held ids ran out while a
 * search had found more than it took — never on a task's path.
 *
 * A store that cannot write (the disk is full) stops nothing for good: a failed claim leaves its
 * ids held for the next search, a run's outcome is written again until it commits
 * ({@link retryingTransitions}), and recovery at start is tried again at each search until it
 * succeeds (nothing is claimed before it has: it tells interrupted runs from ours by status).
 */
export class EmbeddedWorkers implements TaskQueue {
  readonly #repository: SqliteRepository;
  readonly #kinds: KindRegistry;
  readonly #logger: Logger;
  /** The store as runs write to it: each write retried while the store cannot write. */
  readonly #runStore: TaskRepository;
  /** Aborted when the runner stops for good: runs stop retrying their writes. */
  readonly #shutdown = new AbortController();
  readonly #perUser: RunningPerUser;
  readonly #running = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  /** Ids of tasks due now, in the order they became due (a Set: an id is held once). */
  readonly #due = new Set<string>();
  /** Timers of retries due later, by task id. */
  readonly #later = new Map<string, NodeJS.Timeout>();
  #concurrency = 0;
  /** Handlers running now (a run whose outcome is still being written no longer counts). */
  #busy = 0;
  #pumpScheduled = false;
  #pumpImmediate: NodeJS.Immediate | undefined;
  /** The last search filled a batch: more due tasks may wait in the store. */
  #backlog = false;
  #sweepTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Tasks a crashed process left RUNNING have been dealt with; claiming may begin. */
  #recovered = false;
  #recovering: Promise<void> | undefined;
  /**
   * The async context runs start in: the workers' own, not that of the request whose enqueue woke
   * them (a trace or log context of that request would otherwise follow every run after it).
   */
  readonly #scope = new AsyncResource('EmbeddedWorkers');

  /** `maxRunningPerUser`: tasks of one user running at once (MAX_RUNNING_PER_USER); 0: no cap. */
  constructor(repository: SqliteRepository, kinds: KindRegistry, logger: Logger, maxRunningPerUser = 0) {
    this.#repository = repository;
    this.#kinds = kinds;
    this.#logger = logger;
    this.#runStore = retryingTransitions(repository, this.#shutdown.signal, logger);
    this.#perUser = new RunningPerUser(maxRunningPerUser);
  }

  /**
   * Recovers tasks a crashed process left RUNNING, then starts claiming. When the store cannot
   * write, start-up goes on (reads are served): the error is logged once, and recovery and claims
   * follow by themselves once it can.
   */
  async start(concurrency: number): Promise<void> {
    this.#concurrency = concurrency;
    if (concurrency === 0) return;
    await this.#recover(true);
    this.#sweep();
  }

  async enqueue(tasks: readonly Task[]): Promise<void> {
    if (this.#concurrency === 0) return;
    const now = Date.now();
    for (const task of tasks) {
      if (task.runAt <= now) this.#due.add(task.id);
      else this.#dueLater(task.id, task.runAt);
    }
    this.#schedulePump();
  }

  async cancel(taskId: string): Promise<void> {
    this.#running.get(taskId)?.abort.abort('cancelled' satisfies AbortCause);
  }

  async depth(): Promise<number> {
    return this.#repository.countQueued();
  }

  /**
   * Stops claiming; tasks in flight get `graceMs` to finish, then the rest are aborted and handed
   * back to the queue unspent.
   */
  async close(graceMs = 0): Promise<void> {
    this.#stopped = true;
    await this.#recovering?.catch(() => {});
    clearTimeout(this.#sweepTimer);
    clearImmediate(this.#pumpImmediate);
    for (const timer of this.#later.values()) clearTimeout(timer);
    this.#later.clear();
    if (graceMs > 0 && this.#running.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.#running.values()].map((run) => run.done)),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timer);
    }
    const inFlight = [...this.#running.values()];
    this.#shutdown.abort();
    for (const run of inFlight) run.abort.abort('shutdown' satisfies AbortCause);
    await Promise.allSettled(inFlight.map((run) => run.done));
  }

  /** Recovers interrupted tasks unless done already; a store that cannot write leaves it for the next search. */
  #recover(first = false): Promise<void> {
    if (this.#recovered || this.#stopped) return Promise.resolve();
    this.#recovering ??= this.#recoverInterrupted()
      .then(
        () => {
          this.#recovered = true;
          if (!first) this.#logger.info('recovered interrupted tasks; claiming tasks again');
        },
        (err: unknown) => {
          if (!(err instanceof UnavailableError)) throw err;
          if (first) {
            // The store logged its error already; this says what it means for start-up.
            this.#logger.warn(
              'starting without recovering interrupted tasks: they are recovered, and queued tasks run, once the store can write; reads are served meanwhile',
              { reason: err.message },
            );
          }
        },
      )
      .finally(() => {
        this.#recovering = undefined;
      });
    return this.#recovering;
  }

  async #recoverInterrupted(): Promise<void> {
    const now = Date.now();
    for (const id of this.#repository.runningTaskIds()) {
      const event = await this.#repository.transition(id, recoverInterrupted(this.#kinds, now));
      if (event) this.#logger.warn('recovered interrupted task', { taskId: id, status: event.task.status });
    }
  }

  #dueLater(id: string, runAt: number): void {
    clearTimeout(this.#later.get(id));
    const wait = runAt - Date.now();
    const timer = setTimeout(
      () => {
        this.#later.delete(id);
        if (wait > MAX_TIMER_MS) this.#dueLater(id, runAt);
        else {
          this.#due.add(id);
          this.#schedulePump();
        }
      },
      Math.min(MAX_TIMER_MS, Math.max(0, wait)),
    );
    timer.unref();
    this.#later.set(id, timer);
  }

  /** Reads due ids the runner does not hold from the store, then searches again after an interval. */
  #sweep(): void {
    clearTimeout(this.#sweepTimer);
    if (this.#stopped) return;
    let wait = SWEEP_INTERVAL_MS;
    if (!this.#recovered) {
      this.#recover().then(
        () => {
          if (this.#recovered) this.#sweep();
        },
        (err: unknown) => this.#logger.error('recovering interrupted tasks failed', { err }),
      );
    } else {
      if (this.#searchStore()) {
        this.#pump();
        // Earlier when a retry queued before a restart (no timer here holds it) falls due sooner.
        // Tasks due already are held, or come with the next search.
        const nextDueAt = this.#searchStoreFor(() => this.#repository.nextDueAt());
        const untilNext = (nextDueAt ?? Number.POSITIVE_INFINITY) - Date.now();
        if (untilNext > 0) wait = Math.min(SWEEP_INTERVAL_MS, untilNext);
      }
    }
    this.#sweepTimer = setTimeout(() => this.#sweep(), wait);
    this.#sweepTimer.unref();
  }

  /** Holds the due ids the store has that the runner does not; false when the store could not be read. */
  #searchStore(): boolean {
    const ids = this.#searchStoreFor(() => this.#repository.dueTaskIds(Date.now(), SWEEP_BATCH));
    if (ids === undefined) return false;
    for (const id of ids) if (!this.#running.has(id) && !this.#perUser.isHeld(id)) this.#due.add(id);
    this.#backlog = ids.length === SWEEP_BATCH;
    return true;
  }

  /** A read of the store's queue; `undefined` (logged) when it failed: the next search tries again. */
  #searchStoreFor<T>(read: () => T): T | undefined {
    try {
      return read();
    } catch (err) {
      this.#logger.warn('searching the store for due tasks failed; the next search tries again', { err });
      return undefined;
    }
  }

  #schedulePump(): void {
    if (this.#pumpScheduled || this.#concurrency === 0) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  /**
   * Claims as many held ids as there are free slots, in one transaction, and runs what it got;
   * again while the per-user cap refused some and slots and ids are left.
   */
  #pump(): void {
    this.#scope.runInAsyncScope(this.#claimAndRun, this);
  }

  #claimAndRun(): void {
    while (!this.#stopped && this.#recovered) {
      if (this.#due.size === 0 && this.#backlog && !this.#searchStore()) return;
      const free = this.#concurrency - this.#busy;
      if (free <= 0 || this.#due.size === 0) return;
      const ids: string[] = [];
      for (const id of this.#due) {
        this.#due.delete(id);
        if (!this.#running.has(id)) ids.push(id);
        if (ids.length === free) break;
      }
      if (ids.length === 0) return;
      const { change, refused } = this.#perUser.limit(claimIfDue(Date.now()));
      let claimed: Task[];
      try {
        claimed = this.#repository.claim(ids, change);
      } catch (err) {
        // The ids stay held; the next sweep tries again, so a failing store is not hammered.
        for (const id of ids) this.#due.add(id);
        // A store that cannot write logged that once already.
        if (!(err instanceof UnavailableError)) this.#logger.error('claiming tasks failed', { err });
        return;
      }
      for (const task of refused) this.#perUser.hold(task);
      for (const task of claimed) this.#run(task);
      if (refused.length === 0) return;
    }
  }

  #run(task: Task): void {
    const abort = new AbortController();
    this.#busy++;
    this.#perUser.started(task.userId);
    let settled = false;
    // The slot is free once the handler has settled; its outcome is written meanwhile.
    const onSettled = () => {
      if (settled) return;
      settled = true;
      this.#busy--;
      this.#pumpNextTurn();
    };
    const done = executeTask(task, abort, {
      repository: this.#runStore,
      kinds: this.#kinds,
      logger: this.#logger,
      onSettled,
    })
      .then(
        (outcome) => {
          if (outcome.type === 'retry' && !this.#stopped) this.#dueLater(task.id, outcome.task.runAt);
        },
        (err: unknown) => this.#logger.error('task run failed', { taskId: task.id, err }),
      )
      .finally(() => {
        onSettled();
        this.#running.delete(task.id);
        const released = this.#perUser.ended(task.userId);
        if (released.length > 0 && !this.#stopped) {
          for (const id of released) this.#due.add(id);
          this.#pumpNextTurn();
        }
      });
    this.#running.set(task.id, { abort, done });
  }

  /**
   * A slot freed by a finished handler claims at the next turn of the event loop, not at once: a
   * backlog then runs in waves of `concurrency` with I/O served in between.
   */
  #pumpNextTurn(): void {
    if (this.#pumpImmediate || this.#concurrency === 0) return;
    this.#pumpImmediate = setImmediate(() => {
      this.#pumpImmediate = undefined;
      this.#pump();
    });
  }
}

/** Claims a QUEUED task that is due; one whose retry is not due yet stays as it is. */
const claimIfDue =
  (now: number): TaskChange =>
  (task) =>
    task.runAt <= now ? transitions.claim(now)(task) : null;
