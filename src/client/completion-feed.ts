import type { CombinedError } from '@urql/core';
import type { Connection } from './connection.js';
import { errorCode } from './errors.js';
import type { TaskCompletedSubscription } from './generated/graphql.js';
import type { CursorStore, Task, TaskCompletedEvent } from './types.js';

/** What the feed needs from the server, over the client's HTTP and WebSocket transports. */
export interface FeedApi {
  viewer(): Promise<{ userId: string; lastEventCursor: string | null }>;
  /** Up to `limit` tasks in a final status, newest first; `userId` null: the caller's own. */
  finalTasks(userId: string | null, limit: number): Promise<Task[]>;
  subscribeCompleted(
    variables: { userId: string; after: string | null },
    onResult: (result: {
      data?: TaskCompletedSubscription | undefined;
      error?: CombinedError | undefined;
    }) => void,
  ): () => void;
}

export interface FeedOptions {
  readonly api: FeedApi;
  readonly connection: Connection;
  readonly cursorStore: CursorStore;
  /** The user followed; the caller's own when absent. */
  readonly userId: string | undefined;
  readonly retryDelay: (retries: number) => number;
  readonly onError: (error: unknown) => void;
}

/** Reconciliation after CURSOR_EXPIRED looks at most at this many of the newest finished tasks. */
const RECONCILE_LIMIT = 1_000;
/** Finish times of tasks from different workers are compared with this much allowance for clock skew. */
const CLOCK_SKEW_MS = 60_000;
/** Cursors and task ids remembered to drop duplicates; far more than a subscription ever replays twice. */
const REMEMBERED = 10_000;

/** An insertion-ordered set that forgets its oldest entries beyond `limit`. */
class RecentSet {
  readonly #items = new Set<string>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  has(item: string): boolean {
    return this.#items.has(item);
  }

  add(item: string): void {
    this.#items.add(item);
    if (this.#items.size > this.#limit) {
      const oldest = this.#items.values().next();
      if (!oldest.done) this.#items.delete(oldest.value);
    }
  }
}

interface Followed {
  readonly userId: string;
  /** Whether the token's user is the followed one (only then does `viewer.lastEventCursor` apply). */
  readonly isViewer: boolean;
  /** Where the next subscription resumes; null: from now on. */
  cursor: string | null;
}

/**
 * `taskCompleted` of one user as a feed that survives reconnects: each (re)subscription asks for
 * the events after the last delivered cursor, and an event is handed on only if its cursor and
 * its task are new to this feed, so a completion is delivered once however often the socket drops.
 * On CURSOR_EXPIRED it reconciles with the `tasks` query (see {@link CompletionFeed.reconcile}).
 */
export class CompletionFeed {
  readonly #options: FeedOptions;
  readonly #handlers = new Set<(event: TaskCompletedEvent) => void>();
  readonly #deliveredCursors = new RecentSet(REMEMBERED);
  readonly #deliveredTasks = new RecentSet(REMEMBERED);
  #followed: Followed | null = null;
  /** Bumped on every start and stop, so work begun for an earlier run stops. */
  #run = 0;
  /** Bumped on every (re)subscription, so results of an earlier subscription are ignored. */
  #generation = 0;
  #release: (() => void) | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #errorRetries = 0;
  /** Newest `finishedAt` delivered, in ms: a reconciliation skips tasks that finished well before it. */
  #lastFinishedAt: number | null = null;
  /** Cursor writes, in order. */
  #saving: Promise<void> = Promise.resolve();

  constructor(options: FeedOptions) {
    this.#options = options;
  }

  add(handler: (event: TaskCompletedEvent) => void): () => void {
    const wrapped = (event: TaskCompletedEvent) => handler(event);
    this.#handlers.add(wrapped);
    if (this.#handlers.size === 1) this.#start();
    return () => {
      if (this.#handlers.delete(wrapped) && this.#handlers.size === 0) this.#stop();
    };
  }

  async dispose(): Promise<void> {
    this.#handlers.clear();
    this.#stop();
    await this.#saving;
  }

  #start(): void {
    const run = ++this.#run;
    void this.#follow(run).then(() => {
      if (run === this.#run) this.#subscribe();
    });
  }

  #stop(): void {
    this.#run++;
    this.#generation++;
    this.#release?.();
    this.#release = null;
    clearTimeout(this.#retryTimer);
  }

  /** Finds whom to follow and where to resume: the stored cursor, else the viewer's newest one. */
  async #follow(run: number): Promise<void> {
    for (let attempt = 0; this.#followed === null && run === this.#run; attempt++) {
      try {
        const viewer = await this.#options.api.viewer();
        const userId = this.#options.userId ?? viewer.userId;
        const isViewer = userId === viewer.userId;
        const stored = await this.#options.cursorStore.get(userId);
        // Another user's newest cursor is not exposed: without a stored one, follow from now on.
        this.#followed ??= { userId, isViewer, cursor: stored ?? (isViewer ? viewer.lastEventCursor : null) };
      } catch (error) {
        if (attempt > 0) this.#options.onError(error);
        await this.#sleep(attempt);
      }
    }
  }

  /** (Re)subscribes from the current cursor now if connected, and after every reconnect. */
  #subscribe(): void {
    this.#release?.();
    this.#release = this.#options.connection.manage(() => {
      const followed = this.#followed;
      if (!followed) return () => undefined;
      const generation = ++this.#generation;
      const unsubscribe = this.#options.api.subscribeCompleted(
        { userId: followed.userId, after: followed.cursor },
        (result) => {
          if (generation !== this.#generation) return;
          if (result.error) this.#onError(result.error);
          else if (result.data) this.#deliver(result.data.taskCompleted);
        },
      );
      return () => {
        if (generation === this.#generation) this.#generation++;
        unsubscribe();
      };
    });
  }

  #deliver({ cursor, replayed, task }: TaskCompletedEvent): void {
    const followed = this.#followed;
    if (!followed || this.#deliveredCursors.has(cursor)) return;
    this.#deliveredCursors.add(cursor);
    followed.cursor = cursor;
    this.#errorRetries = 0;
    this.#emit({ cursor, replayed, task });
    this.#save(followed.userId, cursor);
  }

  #emit(event: TaskCompletedEvent): void {
    // A task reaches a final status once: one already delivered (say, by a reconciliation) is not news.
    if (this.#deliveredTasks.has(event.task.id)) return;
    this.#deliveredTasks.add(event.task.id);
    const finishedAt = event.task.finishedAt === null ? Number.NaN : Date.parse(event.task.finishedAt);
    if (!Number.isNaN(finishedAt)) this.#lastFinishedAt = Math.max(this.#lastFinishedAt ?? 0, finishedAt);
    for (const handler of [...this.#handlers]) {
      try {
        handler(event);
      } catch (error) {
        this.#options.onError(error);
      }
    }
  }

  #save(userId: string, cursor: string): void {
    this.#saving = this.#saving
      .then(() => this.#options.cursorStore.set(userId, cursor))
      .catch((error: unknown) => this.#options.onError(error));
  }

  #onError(error: CombinedError): void {
    this.#generation++;
    this.#release?.();
    this.#release = null;
    const first = error.graphQLErrors[0];
    const code = errorCode(first);
    // An unusable `after` (expired, or from another deployment's log) is recovered from the same way.
    if (code === 'CURSOR_EXPIRED' || (code === 'BAD_USER_INPUT' && first?.extensions['field'] === 'after')) {
      void this.#reconcile(this.#run);
      return;
    }
    this.#options.onError(error);
    const run = this.#run;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(
      () => {
        if (run === this.#run) this.#subscribe();
      },
      this.#options.retryDelay(this.#errorRetries++),
    );
  }

  /**
   * The log no longer holds the cursor, so the completions after it cannot be replayed. Instead:
   * note the newest cursor (for the caller's own log), list the newest finished tasks, hand on
   * (as replayed, oldest first) those this feed has not delivered and that finished no earlier
   * than the last one it did, then resume from the noted cursor. Anything that completes meanwhile
   * is in the list, the replay after the cursor, or both, and delivered once.
   *
   * Limits: only the newest {@link RECONCILE_LIMIT} finished tasks are looked at; a feed that has
   * delivered nothing yet (a new page with an old stored cursor) cannot tell which of them an
   * earlier page saw, so it hands them all on; reconciled events carry the resume cursor, not
   * their own; when following another user (service token) the feed resumes from "now".
   */
  async #reconcile(run: number): Promise<void> {
    const followed = this.#followed;
    if (!followed) return;
    for (let attempt = 0; run === this.#run; attempt++) {
      try {
        const resumeFrom = followed.isViewer ? (await this.#options.api.viewer()).lastEventCursor : null;
        const finished = await this.#options.api.finalTasks(
          followed.isViewer ? null : followed.userId,
          RECONCILE_LIMIT,
        );
        if (run !== this.#run) return;
        const since = this.#lastFinishedAt === null ? null : this.#lastFinishedAt - CLOCK_SKEW_MS;
        // Oldest first; the list is newest first, which breaks ties of equal finish times.
        const missed = [...finished]
          .reverse()
          .filter((task) => !this.#deliveredTasks.has(task.id))
          .filter(
            (task) => since === null || task.finishedAt === null || Date.parse(task.finishedAt) >= since,
          )
          .sort((a, b) => (a.finishedAt ?? '').localeCompare(b.finishedAt ?? ''));
        const cursor = resumeFrom ?? followed.cursor ?? '';
        for (const task of missed) this.#emit({ task, cursor, replayed: true });
        followed.cursor = resumeFrom;
        if (resumeFrom !== null) this.#save(followed.userId, resumeFrom);
        this.#subscribe();
        return;
      } catch (error) {
        this.#options.onError(error);
        await this.#sleep(attempt);
      }
    }
  }

  #sleep(attempt: number): Promise<void> {
    return new Promise((resolve) => {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = setTimeout(resolve, this.#options.retryDelay(attempt));
    });
  }
}
