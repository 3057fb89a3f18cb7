import { type DocumentNode, getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { type IterableHooks, observeIterable } from '../lib/observe-iterable.js';
import type { GraphQLContext } from '../schema/builder.js';
import type { Metrics } from './metrics.js';

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** What {@link observeSubscription} needs of an operation. */
export interface ObservedOperation {
  readonly document: DocumentNode;
  readonly operationName?: string | null | undefined;
  readonly contextValue?: unknown;
}

/**
 * Counts a subscription as active from now until the returned `onEnd`, and each result sent
 * through `onValue`: the delivered counter, the replayed counter and the delivery lag of live
 * `taskCompleted` events.
 */
export function observeSubscription(
  metrics: Metrics,
  operation: ObservedOperation,
): Required<IterableHooks<unknown>> {
  const definition = getOperationAST(operation.document, operation.operationName);
  const first = definition?.selectionSet.selections[0];
  const field = first?.kind === Kind.FIELD ? first.name.value : 'unknown';
  const trace = (operation.contextValue as Partial<GraphQLContext> | undefined)?.deliveryTrace;
  const delivered = metrics.eventsDelivered.labels(field);
  metrics.activeSubscriptions.inc({ field });
  let ended = false;
  return {
    onValue: () => {
      delivered.inc();
      const event = trace?.take();
      if (!event) return;
      if (event.replayed) metrics.eventsReplayed.inc();
      else if (event.appendedAt !== undefined) {
        metrics.deliveryLag.observe(Math.max(0, Date.now() - event.appendedAt) / 1000);
      }
    },
    onEnd: () => {
      if (ended) return;
      ended = true;
      metrics.activeSubscriptions.dec({ field });
    },
  };
}

/**
 * An envelop plugin (HTTP/SSE and WebSocket alike): {@link observeSubscription} for each
 * subscription that yoga executes.
 */
export function useSubscriptionMetrics(metrics: Metrics): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result, setResult }) {
          if (!isAsyncIterable(result)) return;
          setResult(observeIterable(result, observeSubscription(metrics, args)));
        },
      };
    },
  };
}
