/** How each system under test is driven: what the publisher does per event, said for the report. */
import type { SystemName } from './options.js';
import type { FanoutPath } from './protocol.js';

export const SYSTEM_PATHS: Record<SystemName, { path: FanoutPath; description: string; e2e: string | null }> =
  {
    embedded: {
      path: 'api',
      description:
        'the embedded store belongs to the server process, so the publisher drives the service API over HTTP with a service token: ' +
        'before each step it creates the step\'s tasks with `startTask(kind: "external", userId)` (15 per request; not timed), ' +
        'then, at the step rate, `completeTask(id, result: { bench: { t: sentAt, … } })`: one HTTP mutation, one SQLite transaction and one in-process publish per event. ' +
        'The latency includes the mutation.',
      e2e:
        '`startTask(kind: "echo", userId, input: { value: { bench: … } })` over HTTP by a service caller; the in-process runner claims and runs it; ' +
        'latency from the request to the SUCCEEDED event on the socket.',
    },
    redis: {
      path: 'repository',
      description:
        "the publisher process imports `RedisRepository` + `RedisKeys` from src/backends/redis; before each step it `create`s the step's external tasks (not timed), " +
        'then, at the step rate, `transition(id, externalFinish({ result: { bench: … } }))` — the write `completeTask` makes: GET owner, HGET, then the Lua script ' +
        "(HSET task, XADD to the user's stream, PUBLISH on `<prefix>:{u:<user>}:live`). sentAt is taken inside the change, just before the script.",
      e2e:
        '`startTask(kind: "echo", userId, input: { value: { bench: … } })` over HTTP by a service caller; BullMQ job, run by the server\'s own workers ' +
        '(WORKER_CONCURRENCY); the QUEUED, RUNNING and SUCCEEDED events all go through Redis pub/sub.',
    },
    baseline: {
      path: 'publish',
      description:
        'plain Redis PUBLISH on `<prefix>:{u:<user>}:live` of the JSON payload the service would send for the event (cursor, replayed, task { id status result finishedAt }), sentAt taken while building it.',
      e2e: null,
    },
  };
