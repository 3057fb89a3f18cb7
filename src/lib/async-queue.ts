/**
 * A push-based async iterator. Unlike an async generator, `return()` settles at once even while a
 * consumer awaits `next()`, so a closed subscription releases its listener immediately.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  readonly #values: T[] = [];
  readonly #waiting: ((result: IteratorResult<T>) => void)[] = [];
  readonly #rejecting: ((error: unknown) => void)[] = [];
  #failure: { error: unknown } | undefined;
  #ended = false;
  #closed = false;
  readonly #onClose: () => void;

  /** @param onClose runs once, when the consumer stops or the queue ends. */
  constructor(onClose: () => void = () => {}) {
    this.#onClose = onClose;
  }

  /** Whether values are still accepted. */
  get open(): boolean {
    return !this.#ended && !this.#closed;
  }

  push(value: T): void {
    if (!this.open) return;
    const resolve = this.#waiting.shift();
    if (resolve) {
      this.#rejecting.shift();
      resolve({ value, done: false });
    } else this.#values.push(value);
  }

  /** Ends after the queued values are consumed. */
  end(): void {
    if (!this.open) return;
    this.#ended = true;
    this.#flushWaiting();
  }

  /** Ends with `error` after the queued values are consumed. */
  fail(error: unknown): void {
    if (!this.open) return;
    this.#failure = { error };
    this.end();
  }

  async next(): Promise<IteratorResult<T>> {
    if (this.#values.length > 0) return { value: this.#values.shift() as T, done: false };
    if (this.#closed || this.#ended) return this.#finish();
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.#waiting.push(resolve);
      this.#rejecting.push(reject);
    });
  }

  async return(): Promise<IteratorResult<T>> {
    this.#values.length = 0;
    this.#failure = undefined;
    this.#close();
    this.#flushWaiting();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #finish(): IteratorResult<T> {
    this.#close();
    const failure = this.#failure;
    if (failure) {
      this.#failure = undefined;
      throw failure.error;
    }
    return { value: undefined, done: true };
  }

  #flushWaiting(): void {
    if (this.#values.length > 0) return;
    while (this.#waiting.length > 0) {
      const resolve = this.#waiting.shift();
      const reject = this.#rejecting.shift();
      try {
        resolve?.(this.#finish());
      } catch (error) {
        reject?.(error);
      }
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#onClose();
  }
}
