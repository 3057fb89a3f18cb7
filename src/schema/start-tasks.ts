import { type ItemError, toItemError } from '../graphql/error-mapper.js';
import type { Task } from '../tasks/task.js';
import { MAX_START_BATCH, requireViewer } from '../tasks/task-service.js';
import { builder } from './builder.js';
import { StartTaskInput, startTaskArgs, TaskRef } from './task.js';

/** One input's outcome: exactly one of the two is set. */
interface StartTaskResultShape {
  readonly task: Task | null;
  readonly error: ItemError | null;
}

const StartTaskErrorRef = builder.objectRef<ItemError>('StartTaskError').implement({
  description:
    'Why one input of startTasks started no task: what the same input would have been refused with by startTask.',
  fields: (t) => ({
    code: t.exposeString('code', {
      description:
        "The extensions.code startTask would have given: BAD_USER_INPUT (unknown kind, input failing the kind's schema, a bad userId or idempotencyKey), FORBIDDEN (a user starting for another user), RATE_LIMITED, CONFLICT (an idempotency key already used with another input).",
    }),
    message: t.exposeString('message'),
    field: t.string({
      nullable: true,
      description: 'BAD_USER_INPUT: the argument to fix, e.g. kind or input.ms.',
      resolve: (error) => error.field ?? null,
    }),
    taskId: t.id({
      nullable: true,
      description: 'CONFLICT: the task that already holds the idempotency key.',
      resolve: (error) => error.taskId ?? null,
    }),
    retryAfter: t.int({
      nullable: true,
      description: 'RATE_LIMITED: seconds until a retry can succeed.',
      resolve: (error) => error.retryAfter ?? null,
    }),
  }),
});

const StartTaskResultRef = builder.objectRef<StartTaskResultShape>('StartTaskResult').implement({
  description: 'One input of startTasks: its task, or why it started none. Exactly one of the two is set.',
  fields: (t) => ({
    task: t.field({
      type: TaskRef,
      nullable: true,
      description:
        'The task started, or the one an earlier start with the same user and idempotencyKey started.',
      resolve: (result) => result.task,
    }),
    error: t.field({
      type: StartTaskErrorRef,
      nullable: true,
      description: 'Why this input started no task.',
      resolve: (result) => result.error,
    }),
  }),
});

builder.mutationField('startTasks', (t) =>
  t.field({
    type: [StartTaskResultRef],
    description: `Starts up to ${MAX_START_BATCH.toLocaleString('en-US')} tasks in one call, each input as startTask would: one result per input, in the order of the inputs, each its task or its error. An idempotency key names one task within the call as across calls (the same key twice: the same task twice). The tasks are stored in one transaction (on Redis one pipelined batch) and queued together. The call as a whole fails (no results) with UNAUTHENTICATED without a token, BAD_USER_INPUT (field inputs) for more than ${MAX_START_BATCH.toLocaleString('en-US')} inputs; so does a failure of the store (a retry with the same idempotency keys gets the tasks stored before it).`,
    args: { inputs: t.arg({ type: [StartTaskInput], required: true }) },
    resolve: async (_root, { inputs }, { viewer, tasks }) => {
      const outcomes = await tasks.startMany(requireViewer(viewer), inputs.map(startTaskArgs));
      return outcomes.map((outcome): StartTaskResultShape => {
        if (outcome.ok) return { task: outcome.task, error: null };
        const error = toItemError(outcome.error);
        // An error no client may see fails the call, to be logged and masked like any other.
        if (!error) throw outcome.error;
        return { task: null, error };
      });
    },
  }),
);
