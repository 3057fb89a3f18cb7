import type { Plugin } from 'graphql-yoga';
import type { TaskEvent } from '../../tasks/task.js';
import { taskTracer } from '../../tasks/task-tracing.js';
import { type StreamObserver, SubscriptionStream } from '../subscription-stream.js';
import type { ServerContext } from '../yoga.js';

/** A `taskCompleted` source event: a task event with whether it was replayed from the log. */
function isCompletion(event: unknown): event is TaskEvent & { readonly replayed: boolean } {
  return (
    typeof event === 'object' &&
    event !== null &&
    typeof (event as { replayed?: unknown }).replayed === 'boolean' &&
    typeof (event as { task?: { traceContext?: unknown } }).task?.traceContext === 'string'
  );
}

/** One object per subscription: tells the tracer of each traced completion it delivered. */
class DeliveryObserver implements StreamObserver {
  constructor(readonly connectionId: string | undefined) {}
  onResult(event: unknown): void {
    if (isCompletion(event)) taskTracer().delivered(event, event.replayed, this.connectionId);
  }
}

/**
 * A `task.deliver` span for each completion a subscription delivers whose task is traced, in its
 * task's trace, naming the WebSocket connection (or HTTP request) and whether it was replayed. The
 * same for every transport: every subscription is a {@link SubscriptionStream}. Only in the
 * pipeline while tracing is on; a completion of an untraced task costs a property check.
 */
export function useDeliveryTracing(): Plugin<ServerContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result }) {
          if (!(result instanceof SubscriptionStream)) return;
          const server = args.contextValue as ServerContext;
          result.observe(new DeliveryObserver(server.connectionId ?? server.httpRequest?.requestId));
        },
      };
    },
  };
}
