import type { Logger } from '../../logger.js';
import type { UnavailableError } from '../../tasks/errors.js';
import { diskIsFull, isStorageError, storeUnavailable } from './storage-errors.js';

/**
 * Whether the SQLite store can write, as its writes last found: a storage failure (the disk is
 * full, an I/O error…) is remembered until a write commits again, and reaches callers as the
 * domain's `UnavailableError` (SERVICE_UNAVAILABLE, with a retry delay) instead of an internal
 * error. The change each way is logged once, not once per failed write.
 */
export class StoreHealth {
  readonly #dataDir: string;
  readonly #logger: Logger | undefined;
  #failure: UnavailableError | null = null;

  constructor(dataDir: string, logger?: Logger) {
    this.#dataDir = dataDir;
    this.#logger = logger;
  }

  /** The last write's storage failure while no write has committed since; `null` when writable. */
  get failure(): UnavailableError | null {
    return this.#failure;
  }

  /** Why the store cannot take writes now (a remembered failure, or a full disk); `null` when it can. */
  problem(): string | null {
    if (this.#failure) return this.#failure.message;
    return this.diskIsFull() ? `the disk holding DATA_DIR ${this.#dataDir} is full` : null;
  }

  /** Whether the disk holding the store has no space left at all. */
  diskIsFull(): boolean {
    return diskIsFull(this.#dataDir);
  }

  /**
   * Runs a write made synchronously (a transaction of its own). `wrote` tells from its value
   * whether it changed anything: a transaction that changed nothing commits even on a full disk,
   * and says nothing about whether the store can write.
   */
  writeSync<T>(work: () => T, wrote: (value: T) => boolean = () => true): T {
    let value: T;
    try {
      value = work();
    } catch (error) {
      throw this.#failed(error);
    }
    if (wrote(value)) this.#committed();
    return value;
  }

  /** Runs a write that commits later (with a group commit); `wrote` as for {@link writeSync}. */
  async write<T>(work: () => Promise<T>, wrote: (value: T) => boolean = () => true): Promise<T> {
    let value: T;
    try {
      value = await work();
    } catch (error) {
      throw this.#failed(error);
    }
    if (wrote(value)) this.#committed();
    return value;
  }

  /** Runs a read: a storage failure becomes `UnavailableError`, and says nothing about writes. */
  read<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      throw isStorageError(error) ? storeUnavailable(error, this.#dataDir, 'read') : error;
    }
  }

  #failed(error: unknown): unknown {
    if (!isStorageError(error)) return error;
    const unavailable = storeUnavailable(error, this.#dataDir, 'write');
    if (this.#failure === null) {
      this.#logger?.error('the task store cannot write; requests get SERVICE_UNAVAILABLE until it can', {
        reason: unavailable.message,
        code: error.code,
      });
    }
    this.#failure = unavailable;
    return unavailable;
  }

  #committed(): void {
    if (this.#failure === null) return;
    this.#failure = null;
    this.#logger?.info('the task store can write again');
  }
}
