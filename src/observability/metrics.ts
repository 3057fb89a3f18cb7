import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** What the metrics read when scraped rather than count as things happen. */
export interface MetricSources {
  /** Open WebSocket connections of this process. */
  openConnections(): number;
  /** Tasks waiting for a worker; rejects when the queue cannot be read. */
  queueDepth(): Promise<number>;
}

/** Why an operation or a connection was refused by a limit (the `limit` label). */
export type LimitName =
  | 'body_size'
  | 'query_depth'
  | 'query_aliases'
  | 'query_tokens'
  | 'query_cost'
  | 'query_directives'
  | 'start_rate'
  | 'connections_per_user'
  | 'subscriptions_per_connection'
  | 'websocket_origin';

/** The `reason` label of a refused token, by its message; any other is `invalid`. */
const AUTH_FAILURE_REASONS: Readonly<Record<string, string>> = {
  'token expired': 'expired',
  'token revoked': 'revoked',
};

/** A scrape waits this long for the queue depth. */
const QUEUE_DEPTH_TIMEOUT_MS = 1_000;

/** Delivery lag buckets, in seconds: from a millisecond to a minute. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Task duration buckets, in seconds: from 10 ms to an hour. */
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * The service's Prometheus metrics, in a registry of its own (not prom-client's global one), so
 * several apps in one process (tests) never share or collide. Names start with `tss_`.
 */
/**
 * Default metrics whose every scrape lists each handle of the process: with 10,000 sockets a scrape
 * built arrays of 10,000 objects and held the event loop for milliseconds. The sockets are counted
 * by `tss_websocket_connections` instead.
 */
export const COSTLY_DEFAULT_METRICS: readonly string[] = [
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

export class Metrics {
  readonly registry = new Registry();
  #sources: MetricSources | undefined;

  readonly openConnections = new Gauge({
    name: 'tss_websocket_connections',
    help: 'Open WebSocket connections.',
    registers: [this.registry],
    collect: () => {
      this.openConnections.set(this.#sources?.openConnections() ?? 0);
    },
  });
  readonly activeSubscriptions = new Gauge({
    name: 'tss_subscriptions_active',
    help: 'Subscriptions streaming now, by field (WebSocket and SSE).',
    labelNames: ['field'] as const,
    registers: [this.registry],
  });
  readonly eventsPublished = new Counter({
    name: 'tss_events_published_total',
    help: 'Events this process appended to a log and published, by the status of the task after it.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly statusTransitions = new Counter({
    name: 'tss_task_status_transitions_total',
    help: 'Tasks entering a status (creation counts as entering QUEUED); progress-only events excluded.',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });
  readonly eventsDelivered = new Counter({
    name: 'tss_events_delivered_total',
    help: 'Subscription results sent to clients (WebSocket next frames and SSE events), by field.',
    labelNames: ['field'] as const,
    registers: [this.registry],
  });
  readonly eventsReplayed = new Counter({
    name: 'tss_events_replayed_total',
    help: 'taskCompleted events delivered from the log (replayed: true) rather than live.',
    registers: [this.registry],
  });
  readonly deliveryLag = new Histogram({
    name: 'tss_delivery_lag_seconds',
    help: 'From an event appended to the log to its live taskCompleted result handed to the socket.',
    buckets: LAG_BUCKETS,
    registers: [this.registry],
  });
  readonly taskDuration = new Histogram({
    name: 'tss_task_duration_seconds',
    help: 'From a task created to its final status, by kind and final status.',
    labelNames: ['kind', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'tss_queue_depth',
    help: 'Tasks waiting for a worker (embedded: QUEUED tasks; redis: waiting, delayed and prioritized BullMQ jobs).',
    registers: [this.registry],
    collect: async () => {
      if (!this.#sources) return;
      let timer: NodeJS.Timeout | undefined;
      try {
        // A queue that cannot answer (Redis away: commands wait for it) must not hold the scrape.
        const depth = await Promise.race([
          this.#sources.queueDepth(),
          new Promise<never>((_resolve, reject) => {
            timer = setTimeout(() => reject(new Error('queue depth timed out')), QUEUE_DEPTH_TIMEOUT_MS);
          }),
        ]);
        this.queueDepth.set(depth);
      } catch {
        // An unreadable queue shows as a missing sample rather than a failed scrape; /readyz says why.
        this.queueDepth.reset();
      } finally {
        clearTimeout(timer);
      }
    },
  });
  readonly slowConsumerDisconnects = new Counter({
    name: 'tss_slow_consumer_disconnects_total',
    help: 'WebSocket connections closed (4008) because more than SLOW_CONSUMER_BYTES waited to be sent.',
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'tss_auth_failures_total',
    help: 'Tokens refused, by transport (http, ws) and reason (expired, revoked, invalid).',
    labelNames: ['transport', 'reason'] as const,
    registers: [this.registry],
  });
  readonly redisErrors = new Counter({
    name: 'tss_redis_errors_total',
    help: 'Errors reported by Redis connections (distributed mode).',
    registers: [this.registry],
  });
  readonly limitRejections = new Counter({
    name: 'tss_limit_rejections_total',
    help: 'Requests, operations and connections refused by a limit, by limit.',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly revokedConnections = new Counter({
    name: 'tss_connections_revoked_total',
    help: 'Connections this process ended for revokeUserConnections: WebSockets closed (4403) and SSE streams ended.',
    registers: [this.registry],
  });

  /**
   * @param processMetrics also collect prom-client's default process and Node.js metrics, except
   * {@link COSTLY_DEFAULT_METRICS}.
   */
  constructor({ processMetrics = true }: { processMetrics?: boolean } = {}) {
    if (!processMetrics) return;
    collectDefaultMetrics({ register: this.registry });
    for (const name of COSTLY_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
  }

  /** Counts a refused token: `token expired` is reason `expired`, `token revoked` `revoked`, anything else `invalid`. */
  authFailed(transport: 'http' | 'ws', error: Error): void {
    const reason = AUTH_FAILURE_REASONS[error.message] ?? 'invalid';
    this.authFailures.inc({ transport, reason });
  }

  /** Connects the gauges that are read at scrape time. */
  setSources(sources: MetricSources): void {
    this.#sources = sources;
  }

  /**
   * The Prometheus text exposition of every metric, or of just the metrics named in the request
   * URL's `name` parameters (`/metrics?name=tss_subscriptions_active`): a cheap read of one gauge,
   * where a full scrape also lists this process's open file descriptors. Unknown names are left out.
   */
  async render(url = ''): Promise<{ contentType: string; body: string }> {
    const names = new URL(url, 'http://localhost').searchParams.getAll('name');
    if (names.length === 0)
      return { contentType: this.registry.contentType, body: await this.registry.metrics() };
    const parts: string[] = [];
    for (const name of new Set(names)) {
      if (this.registry.getSingleMetric(name)) parts.push(await this.registry.getSingleMetricAsString(name));
    }
    return { contentType: this.registry.contentType, body: parts.length > 0 ? `${parts.join('\n')}\n` : '' };
  }
}
