/**
 * The publisher's end-to-end operations: each starts echo tasks whose value is the bench stamp, for
 * random users, over one transport (see {@link E2eTransport}), or through the baseline's `POST /tasks`.
 */
import type { GraphQLReply, GraphqlHttp } from './graphql-http.js';
import { errorText } from './graphql-http.js';
import type { GraphqlWsClient } from './graphql-ws-client.js';
import type { JsonHttpClient } from './http-json-client.js';
import type { Outcome } from './pacing.js';
import { BULK_INPUTS, type E2eTransport, stamp, userId } from './protocol.js';

const START_TASK = 'mutation Start($i: StartTaskInput!) { startTask(input: $i) { id } }';
const START_TASKS =
  'mutation StartMany($i: [StartTaskInput!]!) { startTasks(inputs: $i) { task { id } error { code message } } }';

/** How the publisher reaches the system under test. */
export interface E2eSenders {
  /** The service over HTTP; `null` for the baseline. */
  readonly graphql: GraphqlHttp | null;
  /** The service over graphql-ws, its sockets opened on first use. */
  readonly ws: () => Promise<GraphqlWsClient>;
  readonly http: JsonHttpClient;
  /** The baseline's `POST /tasks`; `null` for the service. */
  readonly baselineJobsUrl: string | null;
  readonly pickUser: () => number;
}

/** The operations of one end-to-end step. */
export interface E2ePlan {
  /** Tasks the step starts. */
  readonly tasks: number;
  readonly operations: number;
  /** Operations per second. */
  readonly rate: number;
  readonly tasksPerOperation: number;
  issue(n: number): Promise<Outcome>;
}

const echoInput = (step: number, n: number, user: number) => ({
  kind: 'echo',
  userId: userId(user),
  input: { value: stamp(step, n, user) },
});

/** Plans `rate` tasks per second for `durationS` seconds of `step`. */
export async function planE2e(
  transport: E2eTransport,
  step: number,
  rate: number,
  durationS: number,
  senders: E2eSenders,
): Promise<E2ePlan> {
  const single = (issue: (n: number) => Promise<Outcome>): E2ePlan => {
    const tasks = Math.max(1, Math.round(rate * durationS));
    return { tasks, operations: tasks, rate, tasksPerOperation: 1, issue };
  };
  const { graphql, baselineJobsUrl, pickUser } = senders;
  if (baselineJobsUrl !== null) {
    return single(async (n) => {
      const user = pickUser();
      const reply = await senders.http.post(baselineJobsUrl, {
        userId: userId(user),
        value: stamp(step, n, user),
      });
      return reply.status === 201 ? null : `HTTP ${reply.status}: ${reply.text.slice(0, 200)}`;
    });
  }
  if (!graphql) throw new Error('the publisher has no service URL');
  if (transport === 'http') {
    return single(async (n) =>
      errorText(await graphql.request(START_TASK, { i: echoInput(step, n, pickUser()) })),
    );
  }
  if (transport === 'ws') {
    const ws = await senders.ws();
    return single(async (n) =>
      errorText(await ws.request(START_TASK, { i: echoInput(step, n, pickUser()) })),
    );
  }
  const operations = Math.max(1, Math.round((rate * durationS) / BULK_INPUTS));
  return {
    tasks: operations * BULK_INPUTS,
    operations,
    rate: rate / BULK_INPUTS,
    tasksPerOperation: BULK_INPUTS,
    issue: async (call) => {
      const inputs = Array.from({ length: BULK_INPUTS }, (_, i) =>
        echoInput(step, call * BULK_INPUTS + i, pickUser()),
      );
      try {
        return bulkOutcome(await graphql.request(START_TASKS, { i: inputs }), inputs.length);
      } catch (error) {
        return { sent: 0, errors: inputs.length, firstError: String(error) };
      }
    },
  };
}

/** Counts the inputs of a `startTasks` reply that started a task. */
function bulkOutcome(reply: GraphQLReply, inputs: number): Outcome {
  const results = reply.data?.['startTasks'];
  if (!Array.isArray(results)) {
    return { sent: 0, errors: inputs, firstError: errorText(reply) ?? 'startTasks returned no list' };
  }
  let sent = 0;
  let firstError: string | null = null;
  for (const result of results as {
    task?: { id?: unknown } | null;
    error?: { code?: string; message?: string } | null;
  }[]) {
    if (typeof result?.task?.id === 'string') sent++;
    else firstError ??= result?.error ? `${result.error.code}: ${result.error.message}` : 'no task, no error';
  }
  return { sent, errors: inputs - sent, firstError: firstError ?? errorText(reply) };
}
