import type { AnyVariables, Client, DocumentInput } from '@urql/core';
import { TaskClientError } from './errors.js';
import type { StartTasksMutation as StartTasksData } from './generated/graphql.js';
import {
  CancelTaskMutation,
  StartTaskMutation,
  StartTasksMutation,
  TaskKindsQuery,
  TaskQuery,
  TasksQuery,
} from './operations.js';
import type { StartTaskInput, StartTaskResult, Task, TaskKind, TaskStatus } from './types.js';

export interface TaskPage {
  nodes: Task[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** The SDK's queries and mutations, over HTTP. Failed calls reject with `TaskClientError`. */
export interface TaskOperations {
  startTask(input: StartTaskInput): Promise<Task>;
  /**
   * Starts up to 1,000 tasks in one call (one transaction on the server), each input as
   * {@link TaskOperations.startTask} would. Resolves with one result per input, in the order of
   * `inputs`: `{ task }`, or `{ error }` with the code `startTask` would have rejected that input
   * with (`BAD_USER_INPUT` and its `field`, `FORBIDDEN`, `RATE_LIMITED` and its `retryAfter`,
   * `CONFLICT` and its `taskId`); the other inputs start regardless. The same `idempotencyKey`
   * twice in one call gives the same task twice. Rejects only for the call as a whole:
   * `UNAUTHENTICATED`, `BAD_USER_INPUT` for more than 1,000 inputs, a request over the server's
   * body limit, a network failure.
   */
  startTasks(inputs: readonly StartTaskInput[]): Promise<StartTaskResult[]>;
  /** Rejects with code CONFLICT when the task is already final. */
  cancelTask(id: string): Promise<Task>;
  /** null when there is no such task. */
  task(id: string): Promise<Task | null>;
  /** The caller's tasks, newest first (a service caller: everyone's, or `userId`'s). */
  tasks(args?: { status?: TaskStatus[]; first?: number; after?: string; userId?: string }): Promise<TaskPage>;
  taskKinds(): Promise<TaskKind[]>;
}

/** Sends a query or mutation over HTTP and resolves with its data; rejects with `TaskClientError`. */
export type SendRequest = <Data, Variables extends AnyVariables>(
  kind: 'query' | 'mutation',
  document: DocumentInput<Data, Variables>,
  variables: Variables,
) => Promise<Data>;

/**
 * {@link SendRequest} through `urql`, whose exchanges add the token (see `tokenAuthExchange`);
 * queries are always answered by the server, never from a cache exchange.
 */
export function createSendRequest(urql: Client): SendRequest {
  return async (kind, document, variables) => {
    const result = await (kind === 'query'
      ? urql.query(document, variables, { requestPolicy: 'network-only' })
      : urql.mutation(document, variables)
    ).toPromise();
    if (result.error) throw TaskClientError.from(result.error);
    if (!result.data) throw new TaskClientError('the server answered without data', null);
    return result.data;
  };
}

export function createTaskOperations(request: SendRequest): TaskOperations {
  return {
    startTask: async (input) => (await request('mutation', StartTaskMutation, { input })).startTask,
    startTasks: async (inputs) =>
      (await request('mutation', StartTasksMutation, { inputs: [...inputs] })).startTasks.map(
        toStartTaskResult,
      ),
    cancelTask: async (id) => (await request('mutation', CancelTaskMutation, { id })).cancelTask,
    task: async (id) => (await request('query', TaskQuery, { id })).task,
    tasks: async (args = {}) => (await request('query', TasksQuery, args)).tasks,
    taskKinds: async () => (await request('query', TaskKindsQuery, {})).taskKinds,
  };
}

/** The server's `{ task, error }` (one of them null) as a union, without the null fields. */
function toStartTaskResult({ task, error }: StartTasksData['startTasks'][number]): StartTaskResult {
  if (task) return { task };
  if (!error)
    throw new TaskClientError('the server answered a startTasks result with neither task nor error', null);
  const { code, message, field, taskId, retryAfter } = error;
  return {
    error: {
      code,
      message,
      ...(field !== null ? { field } : {}),
      ...(taskId !== null ? { taskId } : {}),
      ...(retryAfter !== null ? { retryAfter } : {}),
    },
  };
}
