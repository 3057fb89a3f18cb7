import SchemaBuilder from '@pothos/core';
import type { Viewer } from '../auth/viewer.js';
import type { Delivery } from '../tasks/delivery.js';
import type { Json } from '../tasks/task.js';
import type { TaskService } from '../tasks/task-service.js';

/** What every resolver gets. */
export interface GraphQLContext {
  /** The verified caller, `null` when the request carried no token. */
  readonly viewer: Viewer | null;
  readonly tasks: TaskService;
  readonly delivery: Delivery;
  /**
   * Revokes a user's tokens issued before now and ends the connections holding one, on every
   * gateway; resolves with how many were ended on the gateways that answered in time.
   */
  readonly revokeUserConnections: (userId: string) => Promise<number>;
  /**
   * The operation's token is its WebSocket connection's: when it expires the socket closes
   * (4403), so the operation need not end on its own. Otherwise (HTTP/SSE, or a token sent with
   * the operation) a subscription ends with UNAUTHENTICATED when its token expires.
   */
  readonly viewerBoundToConnection?: boolean | undefined;
}

export const builder = new SchemaBuilder<{
  Context: GraphQLContext;
  Scalars: {
    DateTime: { Input: Date; Output: Date | number | string };
    JSON: { Input: Json; Output: Json };
  };
  DefaultFieldNullability: false;
  DefaultInputFieldRequiredness: false;
}>({
  defaultFieldNullability: false,
});
