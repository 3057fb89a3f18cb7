/** How the orchestrator reads a server's subscription count and heap: the service's /metrics, the baseline's /stats. */
import { httpGet } from './sys.js';

/** How the orchestrator reads the server's subscription count and heap. */
export interface ServerProbe {
  /** Subscriptions in effect now; `null` when the server does not say. */
  subscriptions(): Promise<number | null>;
  heapUsed(): Promise<number | null>;
  readonly confirmedBy: string;
  readonly heapSource: string;
}

function metricValue(body: string, pattern: RegExp): number | null {
  const match = pattern.exec(body);
  return match?.[1] ? Number(match[1]) : null;
}

export function serviceProbe(base: string): ServerProbe {
  const metrics = async () => (await httpGet(`${base}/metrics`)).body;
  return {
    subscriptions: async () => {
      // Just the gauge: a full scrape lists /proc/self/fd, whose cost grows with the sockets.
      const body = (await httpGet(`${base}/metrics?name=tss_subscriptions_active`)).body;
      const value = metricValue(body, /^tss_subscriptions_active\{field="taskCompleted"\} (\S+)$/m);
      // A labelled gauge has no sample before its first subscription.
      return value ?? (body.includes('# TYPE tss_subscriptions_active gauge') ? 0 : null);
    },
    heapUsed: async () => metricValue(await metrics(), /^nodejs_heap_size_used_bytes (\S+)$/m),
    confirmedBy: 'tss_subscriptions_active on /metrics',
    heapSource: 'nodejs_heap_size_used_bytes on /metrics',
  };
}

export function baselineProbe(base: string): ServerProbe {
  const stats = async () =>
    JSON.parse((await httpGet(`${base}/stats`)).body) as { subscribed: number; heapUsed: number };
  return {
    subscriptions: async () => (await stats()).subscribed,
    heapUsed: async () => (await stats()).heapUsed,
    confirmedBy: 'Redis SUBSCRIBE confirmed, /stats',
    heapSource: 'process.memoryUsage() on /stats',
  };
}
