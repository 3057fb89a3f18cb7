import type { Client } from 'graphql-ws';
import { waitFor } from './deferred.js';
import { createWsClient } from './ws-clients.js';

export interface ResumedEvent {
  readonly cursor: string;
  readonly replayed: boolean;
  readonly task: { readonly id: string; readonly status: string; readonly attempts: number };
}

const COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { id status attempts } }
}`;

/**
 * A `taskCompleted` subscriber that, like the SDK behind a load balancer, is told where to
 * connect: each {@link connect} opens a new socket there and resumes after the last cursor it
 * received. It records every event (duplicates included) and the close code of each socket.
 */
export class ResumingSubscriber {
  readonly events: ResumedEvent[] = [];
  readonly closes: number[] = [];
  readonly errors: unknown[] = [];
  cursor: string | null;
  readonly #token: string;
  readonly #userId: string;
  #client: Client | undefined;

  constructor(token: string, userId: string, after: string | null) {
    this.#token = token;
    this.#userId = userId;
    this.cursor = after;
  }

  /** Subscribes on a new socket to `wsUrl`, after the last cursor received. */
  connect(wsUrl: string): void {
    const client = createWsClient(wsUrl, this.#token, {
      retryAttempts: 0,
      lazy: false,
      // A socket closed by the server is expected here; the close codes are recorded below.
      onNonLazyError: () => {},
      on: { closed: (event) => this.closes.push((event as { code: number }).code) },
    });
    this.#client = client;
    client.subscribe<{ taskCompleted: ResumedEvent }>(
      { query: COMPLETED, variables: { u: this.#userId, after: this.cursor } },
      {
        next: (result) => {
          if (result.errors) this.errors.push(...result.errors);
          const event = result.data?.taskCompleted;
          if (!event) return;
          this.events.push(event);
          this.cursor = event.cursor;
        },
        error: () => {},
        complete: () => {},
      },
    );
  }

  /** Task ids in the order received. */
  ids(): string[] {
    return this.events.map((event) => event.task.id);
  }

  /** Waits until an event of each of `taskIds` has arrived. */
  until(taskIds: readonly string[], what: string, timeoutMs = 30_000): Promise<true> {
    return waitFor(() => taskIds.every((id) => this.ids().includes(id)), what, timeoutMs);
  }

  /** Waits until the `index`-th socket (0 for the first {@link connect}) has closed; its code. */
  closeOf(index: number, what: string): Promise<number> {
    return waitFor(() => this.closes[index], what);
  }

  async dispose(): Promise<void> {
    await this.#client?.dispose();
  }
}
