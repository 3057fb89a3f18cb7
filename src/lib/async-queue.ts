/** Where a queue in push mode ({@link AsyncQueue.pipeTo}) hands its values and its end. */
export interface QueueSink<T> {
  /** Each value, synchronously, in order. */
  next(value: T): void;
  /** Once, after the last value: `failure` when the queue failed, nothing when it ended or was returned. */
  end(failure?: { readonly error: unknown }): void;
}

/**
 * A push-based async iterator. Unlike an async generator, `return()` settles at once even while a
 * consumer awaits `next()`, so a closed subscription releases its listener immediately.
 *
 * A consumer that can take values synchronously calls {@link pipeTo} instead of iterating: no
 * promise per value.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  readonly #values: T[] = [];
  #sink: QueueSink<T> | undefined;
  readonly #waiting: ((result: IteratorResult<T>) => void)[] = [];
  readonly #rejecting: ((error: unknown) => void)[] = [];
  #failure: { error: unknown } | undefined;
  #ended = false;
  #closed = false;
  readonly #onClose: (() => void) | undefined;

  /** @param onClose runs once, when the consumer stops or the queue ends. */
  constructor(onClose?: () => void) {
    this.#onClose = onClose;
  }

  /** Runs once when the queue closes; subclasses may override instead of passing onClose. */
  protected closed(): void {
    this.#onClose?.();
  }

  /** Whether values are still accepted. */
  get open(): boolean {
    return !this.#ended && !this.#closed;
  }

  push(value: T): void {
    if (!this.open) return;
    if (this.#sink) {
      this.#sink.next(value);
      return;
    }
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
    if (this.#sink) this.#endSink();
    else this.#flushWaiting();
  }

  /**
   * Push mode: the queued values go to `sink` now, later ones as they are pushed, then the end.
   * Only for a queue nobody iterates.
   */
  pipeTo(sink: QueueSink<T>): void {
    if (this.#sink || this.#waiting.length > 0) throw new Error('AsyncQueue: already consumed');
    this.#sink = sink;
    const queued = this.#values.splice(0);
    for (const value of queued) sink.next(value);
    if (this.#ended || this.#closed) this.#endSink();
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
    if (this.#sink) this.#endSink();
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

  #endSink(): void {
    const sink = this.#sink;
    if (!sink) return;
    this.#sink = undefined;
    const failure = this.#failure;
    this.#failure = undefined;
    this.#close();
    sink.end(failure);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.closed();
  }
}
