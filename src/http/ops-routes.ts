import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProbeResult } from '../tasks/ports.js';
import { createHealthHandler } from './health.js';

export const METRICS_PATH = '/metrics';

export interface OpsRoutesOptions {
  readonly probe: () => Promise<readonly ProbeResult[]>;
  readonly isDraining: () => boolean;
  readonly metrics: Metrics;
  /** Serve {@link METRICS_PATH} (`METRICS`). */
  readonly serveMetrics: boolean;
  readonly logger: Logger;
}

/**
 * What operators poll, on the service port and on a worker's ops port alike: `/healthz`,
 * `/readyz` and `GET /metrics`. Returns whether it answered the request.
 */
export function createOpsRoutes({
  probe,
  isDraining,
  metrics,
  serveMetrics,
  logger,
}: OpsRoutesOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const health = createHealthHandler({ probe, isDraining });
  return (req, res) => {
    if (health(req, res)) return true;
    if (!serveMetrics || req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== METRICS_PATH)
      return false;
    metrics.render(req.url).then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
      (err: unknown) => {
        logger.error('metrics rendering failed', { err });
        res.writeHead(500).end();
      },
    );
    return true;
  };
}
