import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ProbeResult } from '../tasks/ports.js';
import { createHealthHandler } from './health.js';
import { closeNow, listen } from './listen.js';

export const METRICS_PATH = '/metrics';

export interface OpsRoutesOptions {
  readonly probe: () => Promise<readonly ProbeResult[]>;
  readonly isDraining: () => boolean;
  readonly metrics: Metrics;
  /** Serve {@link METRICS_PATH} (`METRICS`). */
  readonly serveMetrics: boolean;
  readonly logger: Logger;
}

export type OpsRoutes = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * What operators poll, on the service port, on its `METRICS_PORT` and on a worker's ops port alike:
 * `/healthz`, `/readyz` and `GET /metrics` (when `serveMetrics`). Returns whether it answered the
 * request.
 */
export function createOpsRoutes({
  probe,
  isDraining,
  metrics,
  serveMetrics,
  logger,
}: OpsRoutesOptions): OpsRoutes {
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

/** A listener serving only {@link OpsRoutes} (404 for anything else). */
export interface OpsServer {
  /** `http://host:port`, the port as bound. */
  readonly url: string;
  /** Stops listening and closes its connections. */
  close(): Promise<void>;
}

/**
 * Serves `routes` on `port` of `host`: the service's `METRICS_PORT` and the worker's
 * `WORKER_METRICS_PORT`, kept off the public port so that a scrape target need not be exposed.
 */
export async function listenOps(routes: OpsRoutes, port: number, host: string): Promise<OpsServer> {
  const server = createServer((req, res) => {
    if (!routes(req, res)) res.writeHead(404).end();
  });
  const { origin } = await listen(server, port, host);
  return { url: origin, close: () => closeNow(server) };
}
