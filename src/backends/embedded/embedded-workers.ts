import { MAX_TIMER_MS } from '../../lib/timers.js';
import type { Logger } from '../../logger.js';
import { recoverInterrupted } from '../../tasks/claims.js';
import type { KindRegistry } from '../../tasks/kind-registry.js';
import type { TaskQueue } from '../../tasks/ports.js';
import type { Task } from '../../tasks/task.js';
import { type AbortCause, executeTask } from '../../tasks/task-executor.js';
import * as transitions from '../../tasks/transitions.js';
import type { SqliteRepository } from './sqlite-repository.js';

/**
 * The embedded queue: the SQLite store is the queue. Workers claim due QUEUED tasks in one
 * transaction, run them in this process, and wake on `enqueue` or when the next retry is due.
 */
export class EmbeddedWorkers implements TaskQueue {
  readonly #repository: SqliteRepository;
  readonly #kinds: KindRegistry;
  readonly #logger: Logger;
  readonly #running = new Map<string, { abort: AbortController; done: Promise<unknown> }>();
  #concurrency = 0;
  #timer: NodeJS.Timeout | undefined;
  #pumpScheduled = false;
  #stopped = false;

  constructor(repository: SqliteRepository, kinds: KindRegistry, logger: Logger) {
    this.#repository = repository;
    this.#kinds = kinds;
    this.#logger = logger;
  }

  /** Recovers tasks a crashed process left RUNNING, then starts claiming. */
  async start(concurrency: number): Promise<void> {
    this.#concurrency = concurrency;
    if (concurrency === 0) return;
    await this.#recoverInterrupted();
    this.#pump();
  }

  async enqueue(_task: Task): Promise<void> {
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
    clearTimeout(this.#timer);
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
    for (const run of inFlight) run.abort.abort('shutdown' satisfies AbortCause);
    await Promise.allSettled(inFlight.map((run) => run.done));
  }

  async #recoverInterrupted(): Promise<void> {
    const now = Date.now();
    for (const id of this.#repository.runningTaskIds()) {
      const event = await this.#repository.transition(id, recoverInterrupted(this.#kinds, now));
      if (event) this.#logger.warn('recovered interrupted task', { taskId: id, status: event.task.status });
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

  #pump(): void {
    if (this.#stopped) return;
    const free = this.#concurrency - this.#running.size;
    if (free > 0) {
      const claimed = this.#repository.claimDue(Date.now(), free, transitions.claim(Date.now()));
      for (const task of claimed) this.#run(task);
    }
    this.#armTimer();
  }

  #armTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running.size >= this.#concurrency) return;
    const due = this.#repository.nextDueAt();
    if (due === null) return;
    this.#timer = setTimeout(() => this.#pump(), Math.min(MAX_TIMER_MS, Math.max(0, due - Date.now())));
    this.#timer.unref();
  }

  #run(task: Task): void {
    const abort = new AbortController();
    const done = executeTask(task, abort, {
      repository: this.#repository,
      kinds: this.#kinds,
      logger: this.#logger,
    })
      .catch((err: unknown) => this.#logger.error('task run failed', { taskId: task.id, err }))
      .finally(() => {
        this.#running.delete(task.id);
        this.#schedulePump();
      });
    this.#running.set(task.id, { abort, done });
  }
}
