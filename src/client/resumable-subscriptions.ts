import {
  type AnyVariables,
  type Exchange,
  makeOperation,
  makeResult,
  type Operation,
  type OperationResult,
} from '@urql/core';
import { filter, fromPromise, fromValue, makeSubject, map, merge, mergeMap, pipe } from 'wonka';
import { backoff } from './backoff.js';
import { createMemoryCursorStore } from './cursor-store.js';
import { errorCode } from './errors.js';
import { TasksQuery, ViewerQuery } from './operations.js';
import { type FeedEvent, findFeedField, ResumableFeed } from './resumable-feed.js';
import { createSendRequest, type SendRequest, type TaskPage } from './task-requests.js';
import { type CursorStore, FINAL_STATUSES, type Task } from './types.js';

/** Options of {@link resumableSubscriptionsExchange}. */
export interface ResumableSubscriptionsOptions {
  /**
   * Where the last delivered cursor of each followed user is kept, and read on a subscription's
   * first subscribe. @default in memory (use `createLocalStorageCursorStore()` in browsers to
   * resume across reloads)
   */
  readonly cursorStore?: CursorStore;
  /**
   * How long to wait before sending a subscription again after an error ended it (0-based count
   * of errors in a row). @default jittered exponential backoff from 0.5 s to 10 s
   */
  readonly retryDelay?: (retries: number) => number;
  /** Failures recovered from by retrying (a reconciliation query, a cursor store write). @default console.warn */
  readonly onError?: (error: unknown) => void;
}

/** Reconciliation after CURSOR_EXPIRED looks at most at this many of the newest finished tasks. */
const RECONCILE_LIMIT = 1_000;
/** Resume states kept for subscriptions no longer subscribed, in case they are subscribed again. */
const KEPT_FEEDS = 100;

/**
 * Gives any urql client the service's delivery guarantees for `taskCompleted` subscriptions:
 * every completion of the followed user once, in order, across reconnects and server restarts.
 *
 * - **Resume:** on every (re)subscribe, `after` is the cursor of the last event this subscription
 *   delivered; on its first, the cursor store's cursor for the user, else the `after` variable
 *   given. A graphql-ws client that sends the subscription again after a reconnect sends this
 *   newest cursor too (the variables read it whenever they are serialised).
 * - **Once:** an event whose cursor, or whose task, this subscription already delivered is dropped.
 * - **CURSOR_EXPIRED** (or an `after` from another deployment): the error is not handed on. The
 *   newest finished tasks are read with `tasks` (at most 1,000), those not yet delivered are handed
 *   on as `replayed` events, and the subscription is sent again from the viewer's newest cursor.
 * - **Errors and ends:** a result with an error, or the end of the stream, ends that stream, and
 *   its data is not taken (urql merges the stream's last data into an error result). The error is
 *   handed on without data and without completing the operation, and the subscription is sent
 *   again from the last accepted cursor after `retryDelay`, for as long as it is subscribed.
 *
 * The document must give `after` a variable and select `cursor` (and `task { id finishedAt }` to
 * drop repeats of a task). Put the exchange before the exchanges that send operations
 * (`subscriptionExchange`, `persistedExchange`, `fetchExchange`).
 */
export function resumableSubscriptionsExchange(options: ResumableSubscriptionsOptions = {}): Exchange {
  const {
    cursorStore = createMemoryCursorStore(),
    retryDelay = backoff(500, 10_000),
    onError = (error: unknown) => console.warn('[resumable subscriptions]', error),
  } = options;
  /** Cursor writes, in order. */
  let saving: Promise<void> = Promise.resolve();
  const save = (userId: string | null, cursor: string | null | undefined) => {
    if (userId === null || typeof cursor !== 'string') return;
    saving = saving.then(() => cursorStore.set(userId, cursor)).catch(onError);
  };
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  return ({ client, forward }) =>
    (operations$) => {
      const request = createSendRequest(client);
      const feeds = new Map<number, ResumableFeed>();
      /** Operations this exchange sends again by itself, past the client. */
      const resends = makeSubject<Operation>();
      /** Events recovered by a reconciliation. */
      const recovered = makeSubject<OperationResult>();

      function feedOf(operation: Operation): ResumableFeed | null {
        const known = feeds.get(operation.key);
        if (known) {
          // Most recently used last, so the oldest unused are forgotten first.
          feeds.delete(operation.key);
          feeds.set(operation.key, known);
          return known;
        }
        if (operation.kind !== 'subscription') return null;
        const field = findFeedField(operation.query.definitions, variablesOf(operation));
        if (!field) return null;
        const feed = new ResumableFeed(field);
        feeds.set(operation.key, feed);
        for (const [key, old] of feeds) {
          if (feeds.size <= KEPT_FEEDS) break;
          if (!old.active) feeds.delete(key);
        }
        return feed;
      }

      /** The operation as sent: `after` live. Undefined when a later subscribe or teardown overtook it. */
      async function prepare(operation: Operation, feed: ResumableFeed, generation: number) {
        const { userId, afterVariable } = feed.field;
        let stored: string | null = null;
        try {
          stored = userId === null ? null : await cursorStore.get(userId);
        } catch (error) {
          onError(error);
        }
        if (generation !== feed.generation) return undefined;
        const given = afterVariable === null ? null : variablesOf(operation)[afterVariable];
        feed.cursor ??= stored ?? (typeof given === 'string' ? given : null);
        return live(operation, feed);
      }

      function live(operation: Operation, feed: ResumableFeed): Operation {
        return makeOperation(
          operation.kind,
          { ...operation, variables: feed.liveVariables(variablesOf(operation)) as AnyVariables },
          operation.context,
        );
      }

      /** Ends whatever is left of the subscription downstream, and sends it again. */
      function resend(operation: Operation, feed: ResumableFeed): void {
        resends.next(makeOperation('teardown', operation, operation.context));
        resends.next(live(operation, feed));
      }

      function retryLater(operation: Operation, feed: ResumableFeed): void {
        const generation = feed.generation;
        clearTimeout(feed.retryTimer);
        feed.retryTimer = setTimeout(
          () => {
            if (generation === feed.generation) resend(operation, feed);
          },
          retryDelay(feed.errorRetries++),
        );
      }

      /** See CURSOR_EXPIRED in the exchange's description. */
      async function reconcile(operation: Operation, feed: ResumableFeed, generation: number) {
        const { userId, responseKey } = feed.field;
        for (let attempt = 0; generation === feed.generation; attempt++) {
          try {
            const viewer = await request('query', ViewerQuery, {});
            const isViewer = viewer.viewer.userId === userId;
            const resumeFrom = isViewer ? viewer.viewer.lastEventCursor : null;
            const finished = await finalTasks(request, isViewer ? null : userId);
            if (generation !== feed.generation) return;
            const cursor = resumeFrom ?? feed.cursor ?? '';
            for (const task of feed.missed(finished)) {
              feed.acceptTask(task);
              const event = { __typename: 'TaskEvent', cursor, replayed: true, task };
              recovered.next(makeResult(operation, { data: { [responseKey]: event } }));
            }
            feed.cursor = resumeFrom;
            save(userId, resumeFrom);
            resend(operation, feed);
            return;
          } catch (error) {
            onError(error);
            await sleep(retryDelay(attempt));
          }
        }
      }

      /** What goes on to the client for a result: the result, an error without data, or nothing. */
      function onResult(result: OperationResult, feed: ResumableFeed): OperationResult | null {
        const { error, data, operation } = result;
        if (error || result.hasNext === false) {
          // The stream ended, or carries an error that urql merges with the stream's last data (and
          // into every later result): nothing of it is taken. It ends here and is sent again from the
          // last cursor accepted, while the client's operation stays open (`hasNext`: an error or end
          // result would otherwise complete it, and nothing would subscribe again).
          resends.next(makeOperation('teardown', operation, operation.context));
          const first = error?.graphQLErrors[0];
          const code = errorCode(first);
          if (
            code === 'CURSOR_EXPIRED' ||
            (code === 'BAD_USER_INPUT' && first?.extensions['field'] === 'after')
          ) {
            void reconcile(operation, feed, feed.generation);
            return null;
          }
          retryLater(operation, feed);
          return error ? { ...result, data: undefined, hasNext: true } : null;
        }
        const event: unknown = (data as Record<string, unknown> | null | undefined)?.[feed.field.responseKey];
        if (event === null || typeof event !== 'object') return result;
        const before = feed.cursor;
        const fresh = feed.accept(event as FeedEvent);
        if (feed.cursor !== before) save(feed.field.userId, feed.cursor);
        return fresh ? result : null;
      }

      const outgoing$ = pipe(
        operations$,
        mergeMap((operation) => {
          const feed = feedOf(operation);
          if (!feed) return fromValue(operation);
          const generation = ++feed.generation;
          clearTimeout(feed.retryTimer);
          feed.active = operation.kind !== 'teardown';
          if (!feed.active) return fromValue(operation);
          if (feed.cursor !== undefined) return fromValue(live(operation, feed));
          return pipe(
            fromPromise(prepare(operation, feed, generation)),
            filter((prepared): prepared is Operation => prepared !== undefined),
          );
        }),
      );

      const results$ = pipe(
        forward(merge([outgoing$, resends.source])),
        map((result) => {
          const feed = result.operation.kind === 'subscription' ? feeds.get(result.operation.key) : undefined;
          return feed?.active ? onResult(result, feed) : result;
        }),
        filter((result): result is OperationResult => result !== null),
      );
      return merge([results$, recovered.source]);
    };
}

function variablesOf(operation: Operation): Readonly<Record<string, unknown>> {
  return (operation.variables ?? {}) as Readonly<Record<string, unknown>>;
}

/** Up to {@link RECONCILE_LIMIT} tasks in a final status, newest first; `userId` null: the caller's own. */
async function finalTasks(request: SendRequest, userId: string | null): Promise<Task[]> {
  const found: Task[] = [];
  let after: string | null = null;
  while (found.length < RECONCILE_LIMIT) {
    const tasks: TaskPage = (
      await request('query', TasksQuery, {
        userId,
        status: [...FINAL_STATUSES],
        first: Math.min(100, RECONCILE_LIMIT - found.length),
        after,
      })
    ).tasks;
    found.push(...tasks.nodes);
    if (!tasks.pageInfo.hasNextPage || tasks.pageInfo.endCursor === null) break;
    after = tasks.pageInfo.endCursor;
  }
  return found;
}
