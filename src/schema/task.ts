import { TASK_STATUSES, type Task, type TaskFailureInfo } from '../tasks/task.js';
import { requireViewer, type StartTaskArgs } from '../tasks/task-service.js';
import { builder } from './builder.js';

export const TaskStatusEnum = builder.enumType('TaskStatus', {
  values: TASK_STATUSES,
  description:
    'QUEUED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED (RUNNING may return to QUEUED for a retry).',
});

const TaskErrorRef = builder.objectRef<TaskFailureInfo>('TaskError').implement({
  description: 'Why a task failed or was cancelled.',
  fields: (t) => ({
    code: t.exposeString('code', {
      description: 'Stable code, e.g. TIMEOUT, HANDLER_ERROR, CANCELLED, INTERRUPTED.',
    }),
    message: t.exposeString('message'),
  }),
});

export const TaskRef = builder.objectRef<Task>('Task').implement({
  description: 'A unit of long-running work and its current state.',
  fields: (t) => ({
    id: t.exposeID('id'),
    userId: t.exposeID('userId', { description: 'The owner.' }),
    kind: t.exposeString('kind'),
    status: t.field({ type: TaskStatusEnum, resolve: (task) => task.status }),
    input: t.field({ type: 'JSON', resolve: (task) => task.input }),
    result: t.field({
      type: 'JSON',
      nullable: true,
      description: 'Set when SUCCEEDED.',
      resolve: (task) => task.result,
    }),
    error: t.field({
      type: TaskErrorRef,
      nullable: true,
      description: 'Set when FAILED or CANCELLED.',
      resolve: (task) => task.error,
    }),
    progress: t.exposeFloat('progress', { description: 'From 0 to 1.' }),
    attempts: t.exposeInt('attempts', { description: 'Attempts started so far.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (task) => task.createdAt }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (task) => task.startedAt }),
    finishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (task) => task.finishedAt }),
  }),
});

interface TaskEdge {
  readonly cursor: string;
  readonly node: Task;
}
interface TaskConnectionShape {
  readonly edges: readonly TaskEdge[];
  readonly hasNextPage: boolean;
}

const PageInfoRef = builder.objectRef<TaskConnectionShape>('PageInfo').implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean('hasNextPage'),
    hasPreviousPage: t.boolean({ resolve: () => false }),
    startCursor: t.string({ nullable: true, resolve: (page) => page.edges[0]?.cursor ?? null }),
    endCursor: t.string({ nullable: true, resolve: (page) => page.edges.at(-1)?.cursor ?? null }),
  }),
});

const TaskEdgeRef = builder.objectRef<TaskEdge>('TaskEdge').implement({
  fields: (t) => ({
    cursor: t.exposeString('cursor'),
    node: t.field({ type: TaskRef, resolve: (edge) => edge.node }),
  }),
});

const TaskConnectionRef = builder.objectRef<TaskConnectionShape>('TaskConnection').implement({
  description: 'A page of tasks, newest first.',
  fields: (t) => ({
    edges: t.field({ type: [TaskEdgeRef], resolve: (page) => page.edges }),
    nodes: t.field({ type: [TaskRef], resolve: (page) => page.edges.map((edge) => edge.node) }),
    pageInfo: t.field({ type: PageInfoRef, resolve: (page) => page }),
  }),
});

builder.queryFields((t) => ({
  task: t.field({
    type: TaskRef,
    nullable: true,
    description: "A task by id: null when there is none or it is another user's (the two look the same).",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, { viewer, tasks }) => tasks.get(requireViewer(viewer), String(id)),
  }),
  tasks: t.field({
    type: TaskConnectionRef,
    description:
      "Tasks newest first. Users see their own; a service caller sees everyone's, or one user's with `userId`.",
    args: {
      userId: t.arg.id(),
      status: t.arg({ type: [TaskStatusEnum] }),
      first: t.arg.int({ description: 'Page size, 0 to 100. Default 20.' }),
      after: t.arg.string({ description: 'endCursor of the previous page.' }),
    },
    resolve: async (_root, args, { viewer, tasks }) => {
      const page = await tasks.list(requireViewer(viewer), {
        userId: args.userId == null ? undefined : String(args.userId),
        status: args.status ?? undefined,
        first: args.first ?? undefined,
        after: args.after ?? undefined,
      });
      return {
        edges: page.tasks.map((node, index) => ({ node, cursor: page.cursors[index] ?? '' })),
        hasNextPage: page.hasNextPage,
      };
    },
  }),
}));

/** `startTask`'s input, also each item of `startTasks`. */
export const StartTaskInput = builder.inputType('StartTaskInput', {
  fields: (t) => ({
    kind: t.string({ required: true, description: 'One of taskKinds.' }),
    input: t.field({ type: 'JSON', description: "Checked against the kind's inputSchema. Default {}." }),
    userId: t.id({ description: 'Service role only: start on behalf of this user.' }),
    idempotencyKey: t.string({ description: 'Same user + same key => the same task, not a second one.' }),
  }),
});

/** A `StartTaskInput` as the domain takes it. */
export function startTaskArgs(input: typeof StartTaskInput.$inferInput): StartTaskArgs {
  return {
    kind: input.kind,
    input: input.input ?? undefined,
    userId: input.userId == null ? undefined : String(input.userId),
    idempotencyKey: input.idempotencyKey ?? undefined,
  };
}

builder.mutationFields((t) => ({
  startTask: t.field({
    type: TaskRef,
    args: { input: t.arg({ type: StartTaskInput, required: true }) },
    resolve: (_root, { input }, { viewer, tasks }) =>
      tasks.start(requireViewer(viewer), startTaskArgs(input)),
  }),
  cancelTask: t.field({
    type: TaskRef,
    description: 'CONFLICT when the task already reached a final status.',
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, { viewer, tasks }) => tasks.cancel(requireViewer(viewer), String(id)),
  }),
  reportTaskProgress: t.field({
    type: TaskRef,
    description: 'Service role, external kinds: progress from 0 to 1; a QUEUED task becomes RUNNING.',
    args: { id: t.arg.id({ required: true }), progress: t.arg.float({ required: true }) },
    resolve: (_root, { id, progress }, { viewer, tasks }) =>
      tasks.reportProgress(requireViewer(viewer), String(id), progress),
  }),
  completeTask: t.field({
    type: TaskRef,
    description: 'Service role, external kinds: SUCCEEDED with `result`.',
    args: { id: t.arg.id({ required: true }), result: t.arg({ type: 'JSON' }) },
    resolve: (_root, { id, result }, { viewer, tasks }) =>
      tasks.complete(requireViewer(viewer), String(id), result ?? undefined),
  }),
  failTask: t.field({
    type: TaskRef,
    description: 'Service role, external kinds: FAILED with `message` and `code` (default FAILED).',
    args: {
      id: t.arg.id({ required: true }),
      message: t.arg.string({ required: true }),
      code: t.arg.string(),
    },
    resolve: (_root, { id, message, code }, { viewer, tasks }) =>
      tasks.fail(requireViewer(viewer), String(id), message, code ?? undefined),
  }),
}));

builder.subscriptionField('taskUpdated', (t) =>
  t.field({
    type: TaskRef,
    description: 'The current state first, then every change; completes after a final status.',
    args: { id: t.arg.id({ required: true }) },
    subscribe: (_root, { id }, { viewer, delivery }) =>
      delivery.taskUpdates(requireViewer(viewer), String(id)),
    resolve: (task) => task,
  }),
);
