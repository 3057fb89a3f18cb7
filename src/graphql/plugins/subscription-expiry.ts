import type { Plugin } from 'graphql-yoga';
import { clientError, ErrorCode } from '../../errors.js';
import type { GraphQLContext } from '../../schema/builder.js';

/** Longest delay setTimeout honours; a later deadline is reached in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/**
 * `source` until `deadline` (epoch ms): then the source is returned and the consumer's next (or
 * pending) read fails once with `error()`, after which the stream is done.
 */
export function endAtDeadline<T>(
  source: AsyncIterable<T>,
  deadline: number,
  error: () => Error,
): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let state: 'open' | 'expired' | 'done' = 'open';
  let failPending: ((error: Error) => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const expire = () => {
    if (state !== 'open') return;
    state = 'expired';
    void iterator.return?.();
    if (failPending) {
      state = 'done';
      failPending(error());
      failPending = undefined;
    }
  };
  const arm = () => {
    const wait = deadline - Date.now();
    if (wait <= 0) return expire();
    timer = setTimeout(arm, Math.min(wait, MAX_TIMER_MS));
  };
  arm();
  const finish = () => {
    clearTimeout(timer);
    if (state === 'open') state = 'done';
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      if (state === 'expired') {
        state = 'done';
        return Promise.reject(error());
      }
      if (state === 'done') return Promise.resolve({ done: true, value: undefined });
      return new Promise<IteratorResult<T>>((resolve, reject) => {
        failPending = reject;
        iterator.next().then(
          (result) => {
            if (state === 'done' && failPending === undefined) return;
            failPending = undefined;
            if (result.done) finish();
            resolve(result);
          },
          (err: unknown) => {
            failPending = undefined;
            finish();
            reject(err);
          },
        );
      });
    },
    async return(value?: unknown) {
      finish();
      state = 'done';
      return (await iterator.return?.(value)) ?? { done: true, value: undefined };
    },
    async throw(err?: unknown) {
      finish();
      state = 'done';
      if (iterator.throw) return iterator.throw(err);
      throw err;
    },
  };
}

/**
 * Ends a subscription with UNAUTHENTICATED "token expired" when the token that authorised it
 * expires: an SSE stream, or a WebSocket operation that carried its own token (GraphiQL's headers).
 * A subscription on its connection's token needs none of this: the socket closes with 4403.
 */
export function useSubscriptionExpiry(): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result, setResult }) {
          const context = args.contextValue as Partial<GraphQLContext>;
          const expiresAt = context.viewer?.expiresAt;
          if (context.viewerBoundToConnection || expiresAt == null || !isAsyncIterable(result)) return;
          setResult(
            endAtDeadline(result, expiresAt, () =>
              clientError(ErrorCode.Unauthenticated, 'token expired: subscribe again with a fresh token'),
            ),
          );
        },
      };
    },
  };
}
