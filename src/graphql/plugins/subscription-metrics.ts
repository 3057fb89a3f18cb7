import { getOperationAST, Kind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Metrics } from '../../observability/metrics.js';
import type { GraphQLContext } from '../../schema/builder.js';
import type { TaskEvent } from '../../tasks/task.js';
import { type StreamObserver, SubscriptionStream } from '../subscription-stream.js';

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

/** What a `taskCompleted` source event says about its delivery. */
type SourceEvent = Partial<Pick<TaskEvent, 'appendedAt'>> & { readonly replayed?: boolean };

/** One object per subscription, methods on the prototype: no closures. */
class SubscriptionObserver implements StreamObserver {
  #ended = false;
  constructor(
    readonly metrics: Metrics,
    readonly field: string,
  ) {}
  onResult(event: unknown): void {
    deliveredCounter(this.metrics, this.field).inc();
    if (typeof event !== 'object' || event === null) return;
    const { replayed, appendedAt } = event as SourceEvent;
    if (replayed) this.metrics.eventsReplayed.inc();
    else if (replayed === false && appendedAt !== undefined) {
      this.metrics.deliveryLag.observe(Math.max(0, Date.now() - appendedAt) / 1000);
    }
  }
  onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.metrics.activeSubscriptions.dec({ field: this.field });
  }
}

/**
 * Counts each subscription as active until it ends, and each result delivered: the delivered
 * counter, the replayed counter and the delivery lag of live `taskCompleted` events (from the
 * source event, which the stream hands to its observers beside the result). The same for every
 * transport: every subscription is a {@link SubscriptionStream}.
 */
export function useSubscriptionMetrics(metrics: Metrics): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result }) {
          if (!(result instanceof SubscriptionStream)) return;
          const definition = getOperationAST(args.document, args.operationName);
          const first = definition?.selectionSet.selections[0];
          const field = first?.kind === Kind.FIELD ? first.name.value : 'unknown';
          metrics.activeSubscriptions.inc({ field });
          result.observe(new SubscriptionObserver(metrics, field));
        },
      };
    },
  };
}
