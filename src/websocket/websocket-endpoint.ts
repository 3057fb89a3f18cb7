import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Config } from '../config.js';
import { GRAPHQL_PATH } from '../graphql/yoga.js';
import { createOriginPolicy } from '../http/origin-policy.js';
import { requestIdFrom } from '../http/request-id.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CloseCode } from './close-codes.js';
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

/** Query parameters the old notifier's client put its token in. */
const TOKEN_PARAMETERS = ['token', 'access_token'] as const;

/** The close reason for a token in the URL: where the token goes instead (at most 123 bytes). */
export const TOKEN_IN_URL_REASON =
  "Token in the URL refused: send it in connection_init as connectionParams.authorization: 'Bearer <token>'";

/** The token parameter the upgrade URL carries, if any (its value is never looked at). */
function tokenParameter(url: string): string | undefined {
  const query = new URL(url, 'http://localhost').searchParams;
  return TOKEN_PARAMETERS.find((name) => query.has(name));
}

/**
 * graphql-ws on {@link GRAPHQL_PATH}: upgrades are refused with 404 elsewhere, 503 while
 * draining and 403 from an Origin the {@link createOriginPolicy origin policy} refuses; a message
 * over `MAX_BODY_BYTES` closes its socket with 1009. An upgrade whose URL carries `token` or
 * `access_token` is accepted and closed at once with {@link CloseCode.TokenInUrl} and
 * {@link TOKEN_IN_URL_REASON}: a close reason is something every client (a browser too) can read,
 * where the body of a refused upgrade is not.
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
      const inUrl = tokenParameter(request.url ?? '');
      if (inUrl !== undefined) {
        // The parameter's name only: the token itself is never logged.
        logger.warn('websocket token in URL refused', {
          parameter: inUrl,
          requestId: requestIdFrom(request.headers['x-request-id']),
        });
        wss.handleUpgrade(request, socket, head, (ws) => {
          ws.on('error', () => undefined);
          ws.close(CloseCode.TokenInUrl, TOKEN_IN_URL_REASON);
        });
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
    },
    openConnections: () => wss.clients.size,
    dispose: () => server.dispose(),
  };
}
