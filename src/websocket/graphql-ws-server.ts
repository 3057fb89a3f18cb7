import type { IncomingMessage } from 'node:http';
import { handleProtocols, makeServer, CloseCode as ProtocolCloseCode, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Logger } from '../logger.js';
import { CloseCode } from './close-codes.js';
import { KeepAlive } from './keep-alive.js';

/** The parts of the upgrade request a connection keeps (not the request itself: it is large). */
export interface UpgradeInfo {
  readonly authorization: string | undefined;
  readonly origin: string | undefined;
  readonly requestId: string | undefined;
}

/** What graphql-ws's callbacks get in `ctx.extra`. */
export interface WsExtra {
  readonly socket: WebSocket;
  readonly upgrade: UpgradeInfo;
  /**
   * Sends a text frame as graphql-ws's own frames are sent, in order with them and with the
   * same slow-consumer check; for results pushed outside graphql-ws's iteration.
   */
  readonly send: (frame: string) => void;
}

function isConnectionInit(text: string): boolean {
  try {
    return (JSON.parse(text) as { type?: unknown } | null)?.type === 'connection_init';
  } catch {
    return false;
  }
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
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
  /**
   * Time a socket may take to send `connection_init` before it is closed with 4408, checked from
   * one timer for all sockets (graphql-ws's own `connectionInitWaitTimeout` keeps a timer per
   * socket for the socket's whole life); 0: no limit. @default 0
   */
  readonly connectionInitTimeoutMs?: number;
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
    connectionInitTimeoutMs = 0,
  }: GraphQLWsServerOptions,
): GraphQLWsServer {
  const server = makeServer(serverOptions);
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (err) => logger.error('websocket server error', { err }));

  // Sockets still waiting for connection_init, with their deadline.
  const awaitingInit = new Map<WebSocket, number>();
  let initSweep: NodeJS.Timeout | undefined;
  if (connectionInitTimeoutMs > 0) {
    initSweep = setInterval(
      () => {
        const now = Date.now();
        for (const [socket, deadline] of awaitingInit) {
          if (deadline > now) continue;
          awaitingInit.delete(socket);
          socket.close(
            ProtocolCloseCode.ConnectionInitialisationTimeout,
            'Connection initialisation timeout',
          );
        }
      },
      Math.min(250, connectionInitTimeoutMs),
    );
    initSweep.unref();
  }
  const keepAlive = keepAliveMs > 0 && Number.isFinite(keepAliveMs) ? new KeepAlive(keepAliveMs) : null;

  wss.on('connection', (socket: WebSocket, request: IncomingMessage) => {
    let errored = false;
    socket.on('error', (err) => {
      if (errored) return;
      errored = true;
      // e.g. a message over maxPayload: ws has already started closing with 1009.
      logger.warn('websocket error', { err });
      socket.close(ProtocolCloseCode.InternalServerError, 'Internal server error');
    });
    keepAlive?.add(socket);
    if (connectionInitTimeoutMs > 0) awaitingInit.set(socket, Date.now() + connectionInitTimeoutMs);

    let slow = false;
    const send = (data: string) => {
      if (socket.readyState !== socket.OPEN) return;
      socket.send(data);
      if (!slow && socket.bufferedAmount > maxBufferedBytes) {
        slow = true;
        logger.warn('slow consumer: closing its websocket', { bufferedBytes: socket.bufferedAmount });
        onSlowConsumer?.(extra);
        socket.close(CloseCode.SlowConsumer, 'Slow consumer');
      }
    };
    const extra: WsExtra = {
      socket,
      send,
      upgrade: {
        authorization: header(request, 'authorization'),
        origin: header(request, 'origin'),
        requestId: header(request, 'x-request-id'),
      },
    };
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send,
        close: (code, reason) => socket.close(code, reason),
        onMessage: (cb) => {
          const failed = (err: unknown) => {
            logger.error('websocket message handling failed', { err });
            socket.close(ProtocolCloseCode.InternalServerError, 'Internal server error');
          };
          socket.on('message', (data) => {
            const text = String(data);
            if (awaitingInit.has(socket) && isConnectionInit(text)) awaitingInit.delete(socket);
            let pending: Promise<void>;
            try {
              pending = cb(text);
            } catch (err) {
              failed(err);
              return;
            }
            pending.then(undefined, failed);
          });
        },
      },
      extra,
    );

    socket.on('close', (code, reason) => {
      keepAlive?.remove(socket);
      awaitingInit.delete(socket);
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      keepAlive?.stop();
      clearInterval(initSweep);
      awaitingInit.clear();
      for (const client of wss.clients) client.close(CloseCode.GoingAway, 'Going away');
      wss.removeAllListeners();
      await new Promise<void>((resolve, reject) => wss.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
