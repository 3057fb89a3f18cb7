import { getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { observeIterable } from '../lib/observe-iterable.js';
import type { GraphQLContext } from '../schema/builder.js';
import type { Metrics } from './metrics.js';

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/**
 * An envelop plugin (HTTP/SSE and WebSocket alike): the active-subscriptions gauge by field, and
 * per result sent, the delivered counter, the replayed counter and the delivery lag of live
 * `taskCompleted` events.
 */
export function useSubscriptionMetrics(metrics: Metrics): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result, setResult }) {
          if (!isAsyncIterable(result)) return;
          const operation = getOperationAST(args.document, args.operationName);
          const first = operation?.selectionSet.selections[0];
          const field = first?.kind === Kind.FIELD ? first.name.value : 'unknown';
          const trace = (args.contextValue as Partial<GraphQLContext>).deliveryTrace;
          metrics.activeSubscriptions.inc({ field });
          setResult(
            observeIterable(result, {
              onValue: () => {
                metrics.eventsDelivered.inc({ field });
                const event = trace?.take();
                if (!event) return;
                if (event.replayed) metrics.eventsReplayed.inc();
                else if (event.appendedAt !== undefined) {
                  metrics.deliveryLag.observe(Math.max(0, Date.now() - event.appendedAt) / 1000);
                }
              },
              onEnd: () => metrics.activeSubscriptions.dec({ field }),
            }),
          );
        },
      };
    },
  };
}
