import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Config } from '../config.js';
import { GRAPHQL_PATH } from '../graphql/yoga.js';
import { createOriginPolicy } from '../http/origin-policy.js';
import { requestIdFrom } from '../http/request-id.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { GraphQLWsHooks } from './graphql-ws-hooks.js';
import { useGraphQLWsServer } from './graphql-ws-server.js';

export interface WebSocketEndpointOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly hooks: GraphQLWsHooks;
  /** While draining, upgrades get 503. */
  readonly isDraining: () => boolean;
}

export interface WebSocketEndpoint {
  /** The HTTP server's `upgrade` listener. */
  readonly handleUpgrade: (request: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Open WebSocket connections, for the gauge. */
  readonly openConnections: () => number;
  /** Closes every socket with 1001 "Going away" and stops accepting. */
  readonly dispose: () => Promise<void>;
}

/**
 * graphql-ws on {@link GRAPHQL_PATH}: upgrades are refused with 404 elsewhere, 503 while
 * draining and 403 from an Origin the {@link createOriginPolicy origin policy} refuses; a message
 * over `MAX_BODY_BYTES` closes its socket with 1009.
 */
export function createWebSocketEndpoint({
  config,
  logger,
  metrics,
  hooks,
  isDraining,
}: WebSocketEndpointOptions): WebSocketEndpoint {
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  const server = useGraphQLWsServer(hooks.options, wss, {
    logger,
    keepAliveMs: config.keepAliveMs,
    connectionInitTimeoutMs: config.connectionInitTimeoutMs,
    maxBufferedBytes: config.slowConsumerBytes,
    onSlowConsumer: hooks.onSlowConsumer,
  });
  const origins = createOriginPolicy(config);

  return {
    handleUpgrade(request, socket, head) {
      const refuse = (status: number, text: string) => {
        socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      };
      if ((request.url ?? '').split('?')[0] !== GRAPHQL_PATH) return refuse(404, 'Not Found');
      if (isDraining()) return refuse(503, 'Service Unavailable');
      if (!origins.allowsUpgrade(request.headers.origin, request.headers.host)) {
        logger.warn('websocket origin refused', {
          origin: request.headers.origin,
          requestId: requestIdFrom(request.headers['x-request-id']),
        });
        metrics.limitRejections.inc({ limit: 'websocket_origin' });
        return refuse(403, 'Forbidden');
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    },
    openConnections: () => wss.clients.size,
    dispose: () => server.dispose(),
  };
}
