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
