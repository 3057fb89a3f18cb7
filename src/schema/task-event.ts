import type { DeliveredEvent } from '../tasks/delivery.js';
import { requireViewer } from '../tasks/task-service.js';
import { builder } from './builder.js';
import { TaskRef } from './task.js';

const TaskEventRef = builder.objectRef<DeliveredEvent>('TaskEvent').implement({
  description: "One entry of a user's event log.",
  fields: (t) => ({
    cursor: t.exposeString('cursor', {
      description: "Opaque; strictly increasing within one user's log. Pass as `after` to resume.",
    }),
    task: t.field({
      type: TaskRef,
      description: 'The task as of this event.',
      resolve: (event) => event.task,
    }),
    replayed: t.exposeBoolean('replayed', {
      description: 'true when delivered from the log (after: ...), false when live.',
    }),
  }),
});

builder.subscriptionField('taskCompleted', (t) =>
  t.field({
    type: TaskEventRef,
    description:
      'Every task of the user that reaches a final status. With `after`, first replays the completions after that cursor, then continues live, with no gap and no duplicate. CURSOR_EXPIRED when the cursor is older than the retained log.',
    args: { userId: t.arg.id({ required: true }), after: t.arg.string() },
    subscribe: (_root, { userId, after }, { viewer, delivery }) =>
      delivery.completions(requireViewer(viewer), String(userId), after ?? null),
    resolve: (event) => event,
  }),
);
