import type { Logger } from '../logger.js';

/** How often a backend purges at most: a task is gone within about this of its retention ending. */
const MAX_INTERVAL_MS = 60_000;

/** What one purge removed. */
export interface Purged {
  readonly tasks: number;
  /** Events trimmed, where the backend counts them. */
  readonly events?: number;
}

export interface RetentionScheduleOptions {
  /** `TASK_RETENTION`: finished tasks and events older than this are purged. */
  readonly retentionMs: number;
  /**
   * One purge of what finished (or was appended) before `cutoff`, in bounded batches; it should
   * stop between batches once `stopped()` says so.
   */
  readonly purge: (cutoff: number, stopped: () => boolean) => Promise<Purged>;
  readonly logger: Logger;
}

/**
 * When each backend purges for TASK_RETENTION: at start, then every minute (every `retentionMs`
 * when shorter, at most once a second). A purge that fails (the disk is full, Redis is away) is
 * logged and tried again at the next run.
 */
export class RetentionSchedule {
  readonly #options: RetentionScheduleOptions;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: RetentionScheduleOptions) {
    this.#options = options;
    this.#intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(1_000, options.retentionMs));
  }

  /** Purges now, then every interval until {@link close}. */
  start(): void {
    this.#schedule(0);
  }

  /** Stops purging; resolves once a purge in progress has stopped. */
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
    const { retentionMs, purge, logger } = this.#options;
    try {
      const purged = await purge(Date.now() - retentionMs, () => this.#stopped);
      if (purged.tasks > 0 || (purged.events ?? 0) > 0) {
        logger.info('purged finished tasks past TASK_RETENTION', { ...purged });
      }
    } catch (err) {
      logger.warn('purging finished tasks failed; the next run tries again', { err });
    }
  }
}
