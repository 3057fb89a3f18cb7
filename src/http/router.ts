import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DevTokenHandler } from '../auth/dev-token.js';
import { DEV_TOKEN_PATH } from '../auth/dev-token.js';
import type { GraphQLEndpoint, HttpRequestRecord } from '../graphql/yoga.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import { readBoundedBody } from './body-limit.js';
import type { DemoPageHandler } from './demo-page.js';
import { requestIdFrom } from './request-id.js';

export interface RouterOptions {
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** `/healthz`, `/readyz`, `/metrics`: answered even while draining. */
  readonly ops: (req: IncomingMessage, res: ServerResponse) => boolean;
  readonly graphql: GraphQLEndpoint;
  readonly devToken: DevTokenHandler | null;
  readonly demoPage: DemoPageHandler;
  readonly maxBodyBytes: number;
  readonly isDraining: () => boolean;
}

export interface Router {
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void;
  /** Cuts every open SSE stream (at drain), so that its client reconnects elsewhere. */
  readonly cutEventStreams: () => void;
}

const DRAINING_BODY = '{"errors":[{"message":"this instance is draining: retry (another instance)"}]}';

/**
 * The HTTP routes, in order: ops (health, readiness, metrics), 503 while draining, the dev token
 * endpoint (dev only), the demo page, and GraphQL (body size limit, request id, SSE streams
 * tracked for the drain, one debug log line per request).
 */
export function createRouter({
  logger,
  metrics,
  ops,
  graphql,
  devToken,
  demoPage,
  maxBodyBytes,
  isDraining,
}: RouterOptions): Router {
  const eventStreams = new Set<ServerResponse>();

  const serveGraphQL = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBoundedBody(req, res, maxBodyBytes);
    if (body !== 'read') {
      if (body === 'too-large') metrics.limitRejections.inc({ limit: 'body_size' });
      return;
    }
    if (req.headers.accept?.includes('text/event-stream')) {
      eventStreams.add(res);
      res.once('close', () => eventStreams.delete(res));
    }
    const record: HttpRequestRecord = { requestId: requestIdFrom(req.headers['x-request-id']), userId: null };
    res.setHeader('x-request-id', record.requestId);
    res.once('close', () =>
      logger.debug('http request', {
        requestId: record.requestId,
        userId: record.userId,
        method: req.method,
        status: res.statusCode,
      }),
    );
    await graphql(req, res, { httpRequest: record });
  };

  return {
    handle(req, res) {
      if (ops(req, res)) return;
      if (isDraining()) {
        res
          .writeHead(503, {
            'content-type': 'application/json; charset=utf-8',
            connection: 'close',
            'retry-after': '1',
          })
          .end(DRAINING_BODY);
        return;
      }
      if (devToken && (req.url ?? '/').split('?')[0] === DEV_TOKEN_PATH) return devToken(req, res);
      if (demoPage(req, res)) return;
      void serveGraphQL(req, res);
    },
    cutEventStreams() {
      for (const stream of eventStreams) stream.socket?.destroy();
    },
  };
}
