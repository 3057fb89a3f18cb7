import type { RegisteredKind } from '../tasks/kind-registry.js';
import { requireViewer } from '../tasks/task-service.js';
import { builder } from './builder.js';

const TaskKindRef = builder.objectRef<RegisteredKind>('TaskKind');

TaskKindRef.implement({
  description: 'A kind of task this service can start.',
  fields: (t) => ({
    name: t.exposeString('name'),
    description: t.exposeString('description'),
    inputSchema: t.field({
      type: 'JSON',
      description: 'JSON Schema of StartTaskInput.input for this kind.',
      resolve: (kind) => kind.inputJsonSchema,
    }),
    external: t.exposeBoolean('external', {
      description: 'Run by another system through the service-role mutations, not by this service.',
    }),
    timeoutMs: t.exposeInt('timeoutMs', { description: 'Each attempt is aborted after this long.' }),
    attempts: t.exposeInt('attempts', { description: 'Attempts in all before the task fails.' }),
  }),
});

builder.queryField('taskKinds', (t) =>
  t.field({
    type: [TaskKindRef],
    resolve: (_root, _args, { viewer, tasks }) => {
      requireViewer(viewer);
      return tasks.kinds.list();
    },
  }),
);
