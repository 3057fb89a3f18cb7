import { ForbiddenError, InvalidInputError } from '../tasks/errors.js';
import { requireViewer } from '../tasks/task-service.js';
import { builder } from './builder.js';

builder.mutationField('revokeUserConnections', (t) =>
  t.int({
    description:
      'Service role: closes every open WebSocket connection of the user, on every gateway, with close code 4403 (the client needs a fresh token to reconnect). Returns how many were open on the gateway that served this call; other gateways close theirs as the revocation reaches them.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: async (_root, { userId }, { viewer, revokeUserConnections }) => {
      if (!requireViewer(viewer).isService) {
        throw new ForbiddenError('revokeUserConnections needs the service role');
      }
      const id = String(userId);
      if (id.length === 0 || id.length > 200) {
        throw new InvalidInputError('userId', 'must be 1 to 200 characters');
      }
      return revokeUserConnections(id);
    },
  }),
);
