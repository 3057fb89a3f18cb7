import type { Client } from '@urql/core';
import type { Connection } from './connection.js';
import { TaskCompletedSubscription } from './operations.js';
import type { TaskCompletedEvent } from './types.js';

export interface FeedOptions {
  /** The SDK's urql client: its `resumableSubscriptionsExchange` resumes, dedupes and reconciles. */
  readonly urql: Client;
  readonly connection: Connection;
  /** The caller as its token says, and the cursor of the newest event in its log. */
  readonly viewer: () => Promise<{ userId: string; lastEventCursor: string | null }>;
  /** The user followed; the caller's own when absent. */
  readonly userId: string | undefined;
  readonly retryDelay: (retries: number) => number;
  readonly onError: (error: unknown) => void;
}

interface Followed {
  readonly userId: string;
  /** `after` of the first subscribe when the cursor store holds none: the viewer's newest cursor. */
  readonly after: string | null;
}

/**
 * `taskCompleted` of one user, handed to every handler added: one subscription while any handler
 * is added, opened on every connect and closed on every loss of the socket. Resuming from the last
 * delivered cursor, dropping duplicates and recovering from CURSOR_EXPIRED are the urql client's
 * `resumableSubscriptionsExchange`'s, the same path any urql app uses.
 */
export class CompletionFeed {
  readonly #options: FeedOptions;
  readonly #handlers = new Set<(event: TaskCompletedEvent) => void>();
  #followed: Followed | null = null;
  /** Bumped on every start and stop, so work begun for an earlier run stops. */
  #run = 0;
  #release: (() => void) | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

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

  dispose(): void {
    this.#handlers.clear();
    this.#stop();
  }

  #start(): void {
    const run = ++this.#run;
    void this.#follow(run).then(() => {
      if (run === this.#run) this.#subscribe();
    });
  }

  #stop(): void {
    this.#run++;
    this.#release?.();
    this.#release = null;
    clearTimeout(this.#retryTimer);
  }

  /** Finds whom to follow, and where to start when the cursor store has nothing for them. */
  async #follow(run: number): Promise<void> {
    for (let attempt = 0; this.#followed === null && run === this.#run; attempt++) {
      try {
        const viewer = await this.#options.viewer();
        const userId = this.#options.userId ?? viewer.userId;
        // Another user's newest cursor is not exposed: without a stored one, follow from now on.
        this.#followed ??= { userId, after: userId === viewer.userId ? viewer.lastEventCursor : null };
      } catch (error) {
        if (attempt > 0) this.#options.onError(error);
        await new Promise((resolve) => {
          this.#retryTimer = setTimeout(resolve, this.#options.retryDelay(attempt));
        });
      }
    }
  }

  #subscribe(): void {
    const followed = this.#followed;
    if (!followed) return;
    this.#release = this.#options.connection.manage(() => {
      const { unsubscribe } = this.#options.urql
        .subscription(TaskCompletedSubscription, followed)
        .subscribe((result) => {
          // The exchange sends the subscription again after an error; it is worth knowing about.
          if (result.error) this.#options.onError(result.error);
          else if (result.data) this.#emit(result.data.taskCompleted);
        });
      return unsubscribe;
    });
  }

  #emit(event: TaskCompletedEvent): void {
    for (const handler of [...this.#handlers]) {
      try {
        handler(event);
      } catch (error) {
        this.#options.onError(error);
      }
    }
  }
}
