import type { Viewer } from '../auth/viewer.js';
import { requireViewer } from '../tasks/task-service.js';
import { builder } from './builder.js';

const ViewerRef = builder.objectRef<Viewer>('Viewer');

ViewerRef.implement({
  description: 'The caller, as its token says.',
  fields: (t) => ({
    userId: t.exposeID('userId'),
    roles: t.field({ type: ['String'], resolve: (viewer) => [...viewer.roles] }),
    lastEventCursor: t.field({
      type: 'String',
      nullable: true,
      description:
        "Cursor of the newest event in the caller's log (for an empty log, a cursor before its first event; never null). Subscribe to taskCompleted with it as `after` before starting tasks, and no completion can slip between the two.",
      resolve: (viewer, _args, { tasks }) => tasks.lastEventCursor(viewer.userId),
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.field({
    type: ViewerRef,
    description: 'Who the token says the caller is. UNAUTHENTICATED without a token.',
    resolve: (_root, _args, { viewer }) => requireViewer(viewer),
  }),
);
