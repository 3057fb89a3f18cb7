import { type DocumentNode, getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { type IterableHooks, observeIterable } from '../../lib/observe-iterable.js';
import type { Metrics } from '../../observability/metrics.js';
import type { GraphQLContext } from '../../schema/builder.js';

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** What {@link observeSubscription} needs of an operation. */
export interface ObservedOperation {
  readonly document: DocumentNode;
  readonly operationName?: string | null | undefined;
  readonly contextValue?: unknown;
}

/** The delivered counter's child per field, made once (a lookup by label per event costs). */
const deliveredByField = new WeakMap<Metrics, Map<string, { inc(): void }>>();

function deliveredCounter(metrics: Metrics, field: string): { inc(): void } {
  let byField = deliveredByField.get(metrics);
  if (!byField) {
    byField = new Map();
    deliveredByField.set(metrics, byField);
  }
  let counter = byField.get(field);
  if (!counter) {
    counter = metrics.eventsDelivered.labels(field);
    byField.set(field, counter);
  }
  return counter;
}

/** One object per subscription, methods on the prototype: no closures, no context. */
class SubscriptionObserver implements Required<IterableHooks<unknown>> {
  #ended = false;
  constructor(
    readonly metrics: Metrics,
    readonly field: string,
    readonly trace:
      | { take(): { replayed?: boolean | undefined; appendedAt?: number | undefined } | null }
      | undefined,
  ) {}
  onValue(): void {
    deliveredCounter(this.metrics, this.field).inc();
    const event = this.trace?.take();
    if (!event) return;
    if (event.replayed) this.metrics.eventsReplayed.inc();
    else if (event.appendedAt !== undefined) {
      this.metrics.deliveryLag.observe(Math.max(0, Date.now() - event.appendedAt) / 1000);
    }
  }
  onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.metrics.activeSubscriptions.dec({ field: this.field });
  }
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
  metrics.activeSubscriptions.inc({ field });
  return new SubscriptionObserver(metrics, field, trace);
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
