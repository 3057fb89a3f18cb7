import type { IncomingMessage } from 'node:http';
import { handleProtocols, makeServer, CloseCode as ProtocolCloseCode, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import { CloseCode } from '../close-codes.js';
import type { Logger } from '../logger.js';

/** What graphql-ws's callbacks get in `ctx.extra`. */
export interface WsExtra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}

export interface GraphQLWsServerOptions {
  readonly logger: Logger;
  /**
   * Ping interval; a peer that has not answered a ping by the next one is terminated.
   * @default 12000
   */
  readonly keepAliveMs?: number;
  /**
   * Bytes a socket may hold waiting to be sent; past that, the reader is too slow and the socket
   * is closed with {@link CloseCode.SlowConsumer}. @default Infinity
   */
  readonly maxBufferedBytes?: number;
  /** Told of each socket closed as a slow consumer. */
  readonly onSlowConsumer?: (extra: WsExtra) => void;
}

export interface GraphQLWsServer {
  /** Closes every socket with 1001 "Going away" and stops the WebSocket server. */
  dispose(): Promise<void>;
}

/**
 * graphql-ws on a `ws` server, like graphql-ws's own `useServer`, except that a send does not
 * wait for the peer to read. graphql-ws awaits each send before the next result, so with its
 * adapter a reader that stalls parks every later event in server memory with no bound; here the
 * frames wait in the socket's buffer, where `bufferedAmount` measures them, and a socket holding
 * more than `maxBufferedBytes` is closed (the client resumes from its cursor).
 */
export function useGraphQLWsServer<P extends Record<string, unknown>>(
  serverOptions: ServerOptions<P, WsExtra>,
  wss: WebSocketServer,
  {
    logger,
    keepAliveMs = 12_000,
    maxBufferedBytes = Number.POSITIVE_INFINITY,
    onSlowConsumer,
  }: GraphQLWsServerOptions,
): GraphQLWsServer {
  const server = makeServer(serverOptions);
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => logger.error('websocket server error', { err }));

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    const extra: WsExtra = { socket, request };
    socket.once('error', (err) => {
      // e.g. a message over maxPayload: ws has already started closing with 1009.
      logger.warn('websocket error', { err });
      socket.close(ProtocolCloseCode.InternalServerError, 'Internal server error');
    });

    let pongWait: NodeJS.Timeout | null = null;
    const pingInterval =
      keepAliveMs > 0 && Number.isFinite(keepAliveMs)
        ? setInterval(() => {
            if (socket.readyState !== socket.OPEN) return;
            pongWait = setTimeout(() => socket.terminate(), keepAliveMs);
            socket.once('pong', () => {
              if (pongWait) clearTimeout(pongWait);
              pongWait = null;
            });
            socket.ping();
          }, keepAliveMs)
        : null;

    let slow = false;
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => {
          if (socket.readyState !== socket.OPEN) return;
          socket.send(data);
          if (!slow && socket.bufferedAmount > maxBufferedBytes) {
            slow = true;
            logger.warn('slow consumer: closing its websocket', { bufferedBytes: socket.bufferedAmount });
            onSlowConsumer?.(extra);
            socket.close(CloseCode.SlowConsumer, 'Slow consumer');
          }
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: (cb) =>
          socket.on('message', async (data) => {
            try {
              await cb(String(data));
            } catch (err) {
              logger.error('websocket message handling failed', { err });
              socket.close(ProtocolCloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      extra,
    );

    socket.once('close', (code, reason) => {
      if (pongWait) clearTimeout(pongWait);
      if (pingInterval) clearInterval(pingInterval);
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(CloseCode.GoingAway, 'Going away');
      wss.removeAllListeners();
      await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
