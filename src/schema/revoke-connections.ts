import { ForbiddenError } from '../tasks/errors.js';
import { requireViewer } from '../tasks/task-service.js';
import { assertUserId } from '../tasks/user-id.js';
import { builder } from './builder.js';

builder.mutationField('revokeUserConnections', (t) =>
  t.int({
    description:
      'Service role: revokes the user\'s tokens issued before now, on every gateway: from then on such a token is refused (UNAUTHENTICATED "token revoked" over HTTP and per operation, close code 4403 at a WebSocket connect), every WebSocket connection holding one (its connection token, or one an operation carried) is closed with 4403, and every SSE subscription authorised by one ends with UNAUTHENTICATED. A token issued afterwards (its iat counts whole seconds: from the next second on) works. Returns how many connections (WebSockets and SSE streams) were ended on the gateway that served this call and on every other gateway that answered within 2 seconds; a gateway that answers later, or was disconnected from the others at the time, still ends its own.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: async (_root, { userId }, { viewer, revokeUserConnections }) => {
      if (!requireViewer(viewer).isService) {
        throw new ForbiddenError('revokeUserConnections needs the service role');
      }
      const id = String(userId);
      assertUserId(id);
      return revokeUserConnections(id);
    },
  }),
);
