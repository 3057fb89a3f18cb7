import { Client, fetchExchange, subscriptionExchange } from '@urql/core';
import { backoff } from './backoff.js';
import { CompletionFeed } from './completion-feed.js';
import { Connection } from './connection.js';
import { createMemoryCursorStore } from './cursor-store.js';
import { TaskClientError } from './errors.js';
import { TaskUpdatedSubscription, ViewerQuery } from './operations.js';
import { resumableSubscriptionsExchange } from './resumable-subscriptions.js';
import { createSendRequest, createTaskOperations, type TaskOperations } from './task-requests.js';
import { tokenAuthExchange } from './token-auth.js';
import { TokenSource } from './token-source.js';
import { trustedDocumentsExchange } from './trusted-documents.js';
import {
  type ConnectionState,
  type CursorStore,
  isFinal,
  type Task,
  type TaskCompletedEvent,
} from './types.js';

export interface TaskClientOptions {
  /** http(s)://host:port/graphql: queries and mutations (in a browser, relative to the page: `/graphql`). */
  url: string;
  /**
   * The graphql-ws endpoint.
   * @default `url` with its scheme changed to ws(s)
   */
  wsUrl?: string;
  /** A fixed token. Give this or {@link getToken}; with neither, requests are anonymous. */
  token?: string;
  /**
   * Supplies the token: called for every (re)connection of the WebSocket (so after the server
   * closes it with 4403 for an expired token, the next attempt has a fresh one) and, for HTTP,
   * once at first and again whenever the server answers UNAUTHENTICATED.
   */
  getToken?: () => string | Promise<string>;
  /**
   * Whose completions {@link TaskClient.onTaskCompleted} follows (a service token may follow anyone).
   * @default the token's user (`viewer.userId`)
   */
  userId?: string;
  /** The WebSocket class; on Node < 22 pass `WebSocket` from the `ws` package. @default globalThis.WebSocket */
  webSocketImpl?: unknown;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Ping the server this often. @default 1000 */
  keepAliveMs?: number;
  /** No pong this long after a ping: the connection is dead, reconnect. @default 5000 */
  pongTimeoutMs?: number;
  /** A connection attempt not acknowledged by then is abandoned and retried. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Reconnect delays: exponential from `minDelayMs` to `maxDelayMs`, jittered. `maxAttempts`: how
   * many connection attempts in a row may fail (each one that ends before the server acknowledges
   * it) before the client gives up for good: its connection state becomes `failed`, `onError` and
   * `onConnectionFailed` are told, pending `waitForTask` calls reject, and no further attempt is
   * made. A successful connection resets the count. 5 gives up as the old notifier's client did.
   * @default { minDelayMs: 500, maxDelayMs: 10000, maxAttempts: Infinity }
   */
  retry?: { minDelayMs?: number; maxDelayMs?: number; maxAttempts?: number };
  /**
   * Where the last delivered cursor per user is kept.
   * @default in memory (use {@link createLocalStorageCursorStore} in browsers to resume across reloads)
   */
  cursorStore?: CursorStore;
  /**
   * Failures the client recovers from by itself but that are worth knowing about, and the one it
   * does not: `retry.maxAttempts` reached (a {@link TaskClientError}). @default console.warn
   */
  onError?: (error: unknown) => void;
  /**
   * Called once when `retry.maxAttempts` connection attempts in a row have failed, with the
   * {@link TaskClientError} pending `waitForTask` calls reject with. The connection state is then
   * `failed` for good (also seen by `connectionState.subscribe` listeners).
   */
  onConnectionFailed?: (error: TaskClientError) => void;
  /**
   * Send each operation by the sha256 hash of its trusted document instead of its text (over
   * HTTP and graphql-ws), so the client works against a server with `PERSISTED_OPERATIONS_ONLY`.
   * An operation the server answers PERSISTED_QUERY_NOT_FOUND for is sent again with its text,
   * and as text from then on. `false`: always send the text.
   * @default true
   */
  trustedDocuments?: boolean;
}

export interface TaskClient extends TaskOperations {
  /**
   * Every completion of the followed user, exactly once, in cursor order, across reconnects and
   * server restarts (resuming from the cursor store). Returns the unsubscribe.
   */
  onTaskCompleted(handler: (event: TaskCompletedEvent) => void): () => void;
  /** Resolves with the task's final state, even if it finished before the call. */
  waitForTask(id: string, options?: { signal?: AbortSignal }): Promise<Task>;
  /** The WebSocket's state; listeners are called on each change (read `get()` for the current one). */
  readonly connectionState: {
    get(): ConnectionState;
    subscribe(listener: (state: ConnectionState) => void): () => void;
  };
  /**
   * The client's urql `Client`: its exchanges send trusted documents by hash, resume `taskCompleted`
   * subscriptions ({@link resumableSubscriptionsExchange}), put the token on HTTP operations (a fresh
   * one after UNAUTHENTICATED) and carry subscriptions over the client's WebSocket. Hand it to `@urql/vue`'s `provideClient` (or urql's other bindings) to run the SDK's
   * documents, or your own, with the same token and connection.
   */
  readonly urql: Client;
  /** Closes the WebSocket, stops every feed, rejects pending waits. */
  dispose(): Promise<void>;
}

export function createTaskClient(options: TaskClientOptions): TaskClient {
  const url = absoluteUrl(options.url);
  const {
    wsUrl = url.replace(/^http/, 'ws'),
    token,
    getToken,
    userId,
    webSocketImpl,
    fetch: fetchImpl,
    keepAliveMs = 1_000,
    pongTimeoutMs = 5_000,
    connectTimeoutMs = 10_000,
    retry: { minDelayMs = 500, maxDelayMs = 10_000, maxAttempts = Number.POSITIVE_INFINITY } = {},
    cursorStore = createMemoryCursorStore(),
    onError = (error: unknown) => console.warn('[task client]', error),
    onConnectionFailed,
    trustedDocuments = true,
  } = options;
  if (!(maxAttempts >= 1)) throw new RangeError('retry.maxAttempts must be at least 1');
  const retryDelay = backoff(minDelayMs, maxDelayMs);
  const tokens = new TokenSource(token, getToken);
  const pendingWaits = new Set<(error: Error) => void>();
  /** Set once `retry.maxAttempts` attempts in a row failed: what later waits reject with. */
  let failure: TaskClientError | null = null;

  const connection = new Connection({
    url: wsUrl,
    webSocketImpl,
    keepAliveMs,
    pongTimeoutMs,
    connectTimeoutMs,
    retryDelay,
    maxAttempts,
    onError,
    onFailed: (attempts, lastError) => {
      failure = new TaskClientError(
        `the WebSocket connection failed ${attempts} times in a row (retry.maxAttempts); the client gave up`,
        null,
        [],
        lastError,
      );
      const error = failure;
      for (const fail of [...pendingWaits]) fail(error);
      onError(error);
      onConnectionFailed?.(error);
    },
    connectionParams: async () => {
      // A failure here fails the attempt, and graphql-ws retries it with backoff.
      const current = await tokens.fresh().catch((error: unknown) => {
        onError(error);
        throw error;
      });
      return current === undefined ? {} : { authorization: `Bearer ${current}` };
    },
  });

  const urql = new Client({
    url,
    ...(fetchImpl ? { fetch: fetchImpl } : {}),
    preferGetMethod: false,
    requestPolicy: 'network-only',
    exchanges: [
      resumableSubscriptionsExchange({ cursorStore, retryDelay, onError }),
      ...(trustedDocuments ? [trustedDocumentsExchange()] : []),
      tokenAuthExchange(tokens, onError),
      subscriptionExchange({
        // A subscription sent by hash has no `query`: graphql-ws's types want a string.
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({
            unsubscribe: connection.forward({ ...request, query: request.query ?? '' }, sink),
          }),
        }),
      }),
      fetchExchange,
    ],
  });

  const request = createSendRequest(urql);

  const feed = new CompletionFeed({
    urql,
    connection,
    userId,
    retryDelay,
    onError,
    viewer: async () => (await request('query', ViewerQuery, {})).viewer,
  });

  let disposed = false;

  return {
    ...createTaskOperations(request),
    urql,
    onTaskCompleted(handler) {
      if (disposed) throw new Error('the task client is disposed');
      return feed.add(handler);
    },
    waitForTask(id, { signal } = {}) {
      if (disposed) return Promise.reject(new Error('the task client is disposed'));
      if (failure) return Promise.reject(failure);
      return new Promise<Task>((resolve, reject) => {
        if (signal?.aborted) {
          reject(signal.reason);
          return;
        }
        let release = () => {};
        const settle = (outcome: () => void) => {
          release();
          pendingWaits.delete(fail);
          signal?.removeEventListener('abort', onAbort);
          outcome();
        };
        const fail = (error: unknown) => settle(() => reject(error));
        const onAbort = () => fail(signal?.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
        pendingWaits.add(fail);
        // taskUpdated sends the current state first, so every (re)subscription learns the latest.
        release = connection.manage(() => {
          let live = true;
          const { unsubscribe } = urql.subscription(TaskUpdatedSubscription, { id }).subscribe((result) => {
            if (!live) return;
            if (result.error) {
              // A socket lost meanwhile is the connection's business: it resubscribes on reconnect.
              if (result.error.graphQLErrors.length > 0) fail(TaskClientError.from(result.error));
              return;
            }
            const task = result.data?.taskUpdated;
            if (task && isFinal(task.status)) settle(() => resolve(task));
          });
          return () => {
            live = false;
            unsubscribe();
          };
        });
      });
    },
    connectionState: {
      get: () => connection.state,
      subscribe: (listener) => connection.onStateChange(listener),
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      for (const fail of [...pendingWaits]) fail(new Error('the task client was disposed'));
      feed.dispose();
      await connection.dispose();
    },
  };
}

/** `url` resolved against the page's address, so a browser may pass `/graphql`. */
function absoluteUrl(url: string): string {
  return new URL(url, (globalThis as { location?: { href?: string } }).location?.href).href;
}
