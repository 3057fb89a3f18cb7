import type { Logger } from '../../logger.js';
import type { PurgeBatch } from './sqlite-retention.js';

/** How often the retention purges at most: a task is gone within this of its retention ending. */
const MAX_INTERVAL_MS = 60_000;
/** Tasks (and about as many events) removed per transaction; the event loop runs between batches. */
const BATCH = 500;

export interface TaskRetentionOptions {
  /** Finished tasks and events older than this are purged. */
  readonly retentionMs: number;
  readonly purge: PurgeBatch;
  readonly logger: Logger;
}

/**
 * Purges what TASK_RETENTION no longer keeps: at start, then every minute (or every
 * `retentionMs` when shorter, from one second), in batches of {@link BATCH} with a turn of the
 * event loop between them, so a large backlog never holds the loop or the writer for long. A batch
 * that fails (the disk is full: a delete needs room in the WAL too) ends the run; the next tries.
 */
export class TaskRetention {
  readonly #retentionMs: number;
  readonly #purge: PurgeBatch;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor({ retentionMs, purge, logger }: TaskRetentionOptions) {
    this.#retentionMs = retentionMs;
    this.#purge = purge;
    this.#logger = logger;
    this.#intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(1_000, retentionMs));
  }

  /** Purges now, then every interval until {@link close}. */
  start(): void {
    this.#schedule(0);
  }

  /** Stops purging; resolves once a batch in progress is done. */
  async close(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(wait: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#run().finally(() => this.#schedule(this.#intervalMs));
    }, wait);
    this.#timer.unref();
  }

  async #run(): Promise<void> {
    const cutoff = Date.now() - this.#retentionMs;
    let tasks = 0;
    let events = 0;
    try {
      for (;;) {
        const purged = this.#purge(cutoff, BATCH);
        tasks += purged.tasks;
        events += purged.events;
        if ((purged.tasks < BATCH && purged.events < BATCH) || this.#stopped) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      this.#logger.warn('purging finished tasks failed; the next run tries again', { err });
    }
    if (tasks > 0 || events > 0) {
      this.#logger.info('purged finished tasks past TASK_RETENTION', { tasks, events });
    }
  }
}
