/** How each system under test is driven: what the publisher does per event or task, said for the report. */
import type { SystemName } from './options.js';
import { BULK_INPUTS, E2E_WS_SOCKETS, type E2eTransport, type FanoutPath } from './protocol.js';

export const SYSTEM_PATHS: Record<SystemName, { path: FanoutPath; description: string }> = {
  embedded: {
    path: 'api',
    description:
      'the embedded store belongs to the server process, so the publisher drives the service API over HTTP with a service token: ' +
      'before each step it creates the step\'s tasks with `startTask(kind: "external", userId)` (15 per request; not timed), ' +
      'then, at the step rate, `completeTask(id, result: { bench: { t: sentAt, … } })`: one HTTP mutation, one SQLite transaction and one in-process publish per event. ' +
      'The latency includes the mutation.',
  },
  redis: {
    path: 'repository',
    description:
      "the publisher process imports `RedisRepository` + `RedisKeys` from src/backends/redis; before each step it `create`s the step's external tasks (not timed), " +
      'then, at the step rate, `transition(id, externalFinish({ result: { bench: … } }))` — the write `completeTask` makes: GET owner, HGET, then the Lua script ' +
      "(HSET task, XADD to the user's stream, PUBLISH on `<prefix>:{u:<user>}:live`). sentAt is taken inside the change, just before the script.",
  },
  baseline: {
    path: 'publish',
    description:
      'plain Redis PUBLISH on `<prefix>:{u:<user>}:live` of the JSON payload the service would send for the event (cursor, replayed, task { id status result finishedAt }), sentAt taken while building it.',
  },
};

const E2E_START: Record<E2eTransport, string> = {
  http: '`startTask(input: { kind: "echo", userId, input: { value: { bench: … } } })` over HTTP, one POST per task, by a service caller',
  ws:
    `the same \`startTask\` as a graphql-ws operation (\`subscribe\`, answered by \`next\` and \`complete\`) over ${E2E_WS_SOCKETS} ` +
    'sockets authenticated with the service token in connection_init',
  bulk: `\`startTasks(inputs: [StartTaskInput!]!)\` with ${BULK_INPUTS} such inputs per HTTP POST`,
};

const E2E_RUN: Record<'embedded' | 'redis', string> = {
  embedded: 'the in-process runner claims and runs it (SQLite store, in-process publish)',
  redis:
    "a BullMQ job, run by the server's own workers (WORKER_CONCURRENCY); the QUEUED, RUNNING and SUCCEEDED events all go through Redis pub/sub",
};

/** How an end-to-end ramp starts and runs its tasks; latency is from the request to the SUCCEEDED event on the socket. */
export function e2eDescription(system: SystemName, transport: E2eTransport | 'baseline'): string {
  if (system === 'baseline' || transport === 'baseline') {
    return (
      'plain Node `http` `POST /tasks` `{ userId, value: { bench: … } }` on the baseline server → BullMQ `Queue.add` ' +
      '(removeOnComplete, the last 1,000 failures kept) → a BullMQ `Worker` (concurrency --workers) in a separate process → ' +
      "Redis PUBLISH of the completion payload on the user's channel → the baseline server's raw `ws` push"
    );
  }
  return `${E2E_START[transport]}; ${E2E_RUN[system]}.`;
}
