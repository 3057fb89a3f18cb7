export interface IterableHooks<T> {
  /** Each value, as the consumer receives it. */
  readonly onValue?: (value: T) => void;
  /** Once, when the stream ends for any reason: done, returned by the consumer, or failed. */
  readonly onEnd?: () => void;
}

/**
 * `source` as an async iterator that tells `hooks` of each value and of its end, whichever way it
 * ends (envelop's own `onEnd` misses a stream that fails).
 */
export function observeIterable<T>(
  source: AsyncIterable<T>,
  hooks: IterableHooks<T>,
): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    hooks.onEnd?.();
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      try {
        const result = await iterator.next();
        if (result.done) end();
        else hooks.onValue?.(result.value);
        return result;
      } catch (error) {
        end();
        throw error;
      }
    },
    async return(value?: unknown) {
      end();
      return (await iterator.return?.(value)) ?? { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      end();
      if (iterator.throw) return iterator.throw(error);
      throw error;
    },
  };
}
