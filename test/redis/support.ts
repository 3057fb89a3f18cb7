/**
 * Shared pieces of the distributed-mode suites: the GraphQL operations they send, typed views of
 * the answers, and a subscriber that tracks its cursor and resumes from it like the SDK does.
 */
import type { Client } from 'graphql-ws';
import type { Redis } from 'ioredis';
import { expect } from 'vitest';
import { waitFor } from '../utils/deferred.js';
import type { GraphQLResponse } from '../utils/tserver.js';
import { createWsClient } from '../utils/ws-clients.js';

export interface TaskView {
  id: string;
  userId: string;
  kind: string;
  status: string;
  attempts: number;
  result: unknown;
  error: { code: string; message: string } | null;
}

export interface CompletionEvent {
  cursor: string;
  replayed: boolean;
  task: TaskView;
}

/** A child server or an in-process test server: anything that POSTs GraphQL with a token. */
export interface GqlTarget {
  gql<T>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

const TASK_FIELDS = 'id userId kind status attempts result error { code message }';
const START = `mutation($kind: String!, $input: JSON, $userId: ID) {
  startTask(input: { kind: $kind, input: $input, userId: $userId }) { ${TASK_FIELDS} }
}`;
const CANCEL = `mutation($id: ID!) { cancelTask(id: $id) { ${TASK_FIELDS} } }`;
const TASK = `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`;
const TASKS = `query($userId: ID, $after: String) {
  tasks(userId: $userId, first: 100, after: $after) {
    nodes { ${TASK_FIELDS} }
    pageInfo { hasNextPage endCursor }
  }
}`;
const LAST_CURSOR = 'query { viewer { lastEventCursor } }';
export const COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { ${TASK_FIELDS} } }
}`;

/** Sends an operation and returns its data; fails the test on any GraphQL error. */
export async function gqlData<T>(
  target: GqlTarget,
  query: string,
  variables: Record<string, unknown>,
  token: string,
): Promise<T> {
  const response = await target.gql<T>(query, variables, token);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  if (!response.data) throw new Error(`no data for ${query}`);
  return response.data;
}

export async function startTask(
  target: GqlTarget,
  token: string,
  kind: string,
  input: unknown,
): Promise<TaskView> {
  return (await gqlData<{ startTask: TaskView }>(target, START, { kind, input }, token)).startTask;
}

export async function cancelTask(target: GqlTarget, token: string, id: string): Promise<TaskView> {
  return (await gqlData<{ cancelTask: TaskView }>(target, CANCEL, { id }, token)).cancelTask;
}

export async function getTask(target: GqlTarget, token: string, id: string): Promise<TaskView> {
  const { task } = await gqlData<{ task: TaskView | null }>(target, TASK, { id }, token);
  if (!task) throw new Error(`no task ${id}`);
  return task;
}

/** Every task of `userId` (all pages), newest first. */
export async function listTasks(target: GqlTarget, token: string, userId: string): Promise<TaskView[]> {
  const all: TaskView[] = [];
  let after: string | null = null;
  for (;;) {
    const {
      tasks,
    }: { tasks: { nodes: TaskView[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
      await gqlData(target, TASKS, { userId, after }, token);
    all.push(...tasks.nodes);
    if (!tasks.pageInfo.hasNextPage || tasks.pageInfo.endCursor === null) return all;
    after = tasks.pageInfo.endCursor;
  }
}

/** Polls the task until `check` holds. */
export function waitForTask(
  target: GqlTarget,
  token: string,
  id: string,
  check: (task: TaskView) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<TaskView> {
  return waitFor(
    async () => {
      const task = await getTask(target, token, id);
      return check(task) && task;
    },
    `task ${id} ${what}`,
    timeoutMs,
  );
}

export async function lastEventCursor(target: GqlTarget, token: string): Promise<string | null> {
  return (await gqlData<{ viewer: { lastEventCursor: string | null } }>(target, LAST_CURSOR, {}, token))
    .viewer.lastEventCursor;
}

/**
 * Runs an echo task to completion and returns the user's newest cursor: subscribing with it as
 * `after` misses nothing that happens later, however late the subscription reaches the server.
 */
export async function primeCursor(target: GqlTarget, token: string): Promise<string> {
  const warmup = await startTask(target, token, 'echo', { value: 'warm-up' });
  await waitForTask(target, token, warmup.id, (task) => FINAL_STATUSES.has(task.status), 'to finish');
  const cursor = await lastEventCursor(target, token);
  if (!cursor) throw new Error('viewer.lastEventCursor is null after a finished task');
  return cursor;
}

/** Subscribers of a pub/sub channel, across every connection to this Redis node. */
export async function numsub(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.pubsub('NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

/**
 * A `taskCompleted` subscriber that behaves like the SDK: it remembers the cursor of the last
 * event received and, whenever the operation ends (error or complete) or the socket is lost,
 * subscribes again with `after` = that cursor. It records every event it receives, without
 * de-duplicating, so a test can count duplicates.
 */
export class TrackingSubscriber {
  readonly events: CompletionEvent[] = [];
  readonly errors: unknown[] = [];
  /** How many times the operation was started (1 + resumptions). */
  subscriptions = 0;
  cursor: string | null;
  readonly #client: Client;
  readonly #userId: string;
  #stop: (() => void) | undefined;
  #closed = false;

  constructor(wsUrl: string, token: string, userId: string, after: string | null) {
    // No graphql-ws retries: they would re-send the first `after`; a lost socket errors the
    // operation instead, and the error handler resumes from the latest cursor on a new socket.
    this.#client = createWsClient(wsUrl, token, { retryAttempts: 0 });
    this.#userId = userId;
    this.cursor = after;
    this.#subscribe();
  }

  #subscribe(): void {
    if (this.#closed) return;
    this.subscriptions++;
    this.#stop = this.#client.subscribe<{ taskCompleted: CompletionEvent }>(
      { query: COMPLETED, variables: { u: this.#userId, after: this.cursor } },
      {
        next: (result) => {
          if (result.errors) this.errors.push(...result.errors);
          const event = result.data?.taskCompleted;
          if (event) {
            this.events.push(event);
            this.cursor = event.cursor;
          }
        },
        error: (error) => {
          this.errors.push(error);
          setTimeout(() => this.#subscribe(), 100);
        },
        complete: () => {
          if (!this.#closed) setTimeout(() => this.#subscribe(), 100);
        },
      },
    );
  }

  /** Events of `taskId` received so far. */
  eventsOf(taskId: string): CompletionEvent[] {
    return this.events.filter((event) => event.task.id === taskId);
  }

  /** Waits until an event of each of `taskIds` has arrived. */
  async until(taskIds: Iterable<string>, what: string, timeoutMs = 30_000): Promise<void> {
    const wanted = [...taskIds];
    await waitFor(
      () => {
        const seen = new Set(this.events.map((event) => event.task.id));
        return wanted.every((id) => seen.has(id));
      },
      what,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#stop?.();
    await this.#client.dispose();
  }
}
