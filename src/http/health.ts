import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProbeResult } from '../tasks/ports.js';

export const HEALTH_PATH = '/healthz';
export const READY_PATH = '/readyz';

export interface HealthOptions {
  /** The backend's probe: store, bus, queue (and so Redis in distributed mode). */
  readonly probe: () => Promise<readonly ProbeResult[]>;
  /** While draining, `/readyz` answers 503 so that load balancers stop sending traffic. */
  readonly isDraining: () => boolean;
}

/** Answers on {@link HEALTH_PATH} and {@link READY_PATH}. */
export type HealthHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

function reply(res: ServerResponse, status: number, body: unknown): void {
  res
    .writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}

/**
 * `/healthz`: 200 while the process serves HTTP (liveness). `/readyz`: 200 when the store, the bus
 * and the queue answer, 503 naming each part that does not (`{"status":"unavailable","failed":["bus"],
 * "checks":{...}}`), and 503 `{"status":"draining"}` once a drain has begun.
 */
export function createHealthHandler({ probe, isDraining }: HealthOptions): HealthHandler {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === HEALTH_PATH) {
      reply(res, 200, { status: 'ok' });
      return true;
    }
    if (path !== READY_PATH) return false;
    if (isDraining()) {
      reply(res, 503, { status: 'draining' });
      return true;
    }
    probe().then(
      (parts) => {
        if (isDraining()) return reply(res, 503, { status: 'draining' });
        const checks = Object.fromEntries(
          parts.map((part) => [part.part, part.ok ? 'ok' : (part.detail ?? 'failed')]),
        );
        const failed = parts.filter((part) => !part.ok).map((part) => part.part);
        reply(res, failed.length === 0 ? 200 : 503, {
          status: failed.length === 0 ? 'ready' : 'unavailable',
          ...(failed.length > 0 ? { failed } : {}),
          checks,
        });
      },
      (error: unknown) =>
        reply(res, 503, {
          status: 'unavailable',
          failed: ['probe'],
          checks: { probe: error instanceof Error ? error.message : String(error) },
        }),
    );
    return true;
  };
}
