import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { type ExecutionArgs, GraphQLError, type GraphQLFormattedError, getOperationAST } from 'graphql';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import { createDevTokenHandler, DEV_TOKEN_PATH } from './auth/dev-token.js';
import { bearerToken, createTokenVerifier, mintToken, TokenError } from './auth/tokens.js';
import type { Viewer } from './auth/viewer.js';
import { createEmbeddedBackend } from './backends/embedded/embedded-backend.js';
import { createRedisBackend, redisOptionsFromConfig } from './backends/redis/redis-backend.js';
import type { Config } from './config.js';
import { clientError, ErrorCode } from './errors.js';
import { queryLimitPlugins } from './graphql/plugins/query-limits.js';
import { useSubscriptionExpiry } from './graphql/plugins/subscription-expiry.js';
import { observeSubscription, useSubscriptionMetrics } from './graphql/plugins/subscription-metrics.js';
import { pushSubscription } from './graphql/subscription-stream.js';
import { readBoundedBody } from './http/body-limit.js';
import { createDemoPageHandler } from './http/demo-page.js';
import { createHealthHandler } from './http/health.js';
import { createLogger, type Logger } from './logger.js';
import { DeliveryTrace } from './observability/delivery-trace.js';
import { Metrics } from './observability/metrics.js';
import { observeTaskEvents } from './observability/task-observer.js';
import type { GraphQLContext } from './schema/builder.js';
import { schema } from './schema/index.js';
import { Delivery } from './tasks/delivery.js';
import { KindRegistry } from './tasks/kind-registry.js';
import { BUILT_IN_KINDS } from './tasks/kinds/index.js';
import type { TaskKind } from './tasks/kinds/kind.js';
import type { Backend } from './tasks/ports.js';
import { TaskService } from './tasks/task-service.js';
import { CloseCode } from './websocket/close-codes.js';
import { ConnectionRegistry } from './websocket/connection-registry.js';
import { ConnectionRevoker } from './websocket/connection-revoker.js';
import { useGraphQLWsServer } from './websocket/graphql-ws-server.js';

export const GRAPHQL_PATH = '/graphql';
export const METRICS_PATH = '/metrics';
/** Longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface AppDeps {
  readonly config: Config;
  /** @default the embedded backend (SQLite in `config.dataDir`) */
  readonly backend?: Backend;
  /** @default the built-in kinds */
  readonly kinds?: readonly TaskKind[] | KindRegistry;
  /** @default a JSON logger at `config.logLevel` */
  readonly logger?: Logger;
  /** @default a registry of this app's own */
  readonly metrics?: Metrics;
}

/** Tokens minted at start when no key is configured outside production. */
export interface DevTokens {
  readonly userId: string;
  readonly user: string;
  readonly serviceId: string;
  readonly service: string;
}

export interface App {
  /** Starts workers and listens; resolves with the bound address. */
  start(): Promise<{ url: string; port: number; devTokens: DevTokens | null }>;
  /**
   * Drains and stops: `/readyz` answers 503 and new requests and WebSocket upgrades get 503, open
   * WebSockets are closed with 1001 and SSE streams cut (clients reconnect elsewhere and resume),
   * running tasks get `graceMs` to finish and the rest are handed back to the queue; then the
   * server stops listening and the store is closed.
   */
  stop(options?: StopOptions): Promise<void>;
  readonly server: Server;
}

export interface StopOptions {
  /** How long running tasks may take to finish before they are handed back. @default 0 */
  readonly graceMs?: number;
}

/** What the server keeps per WebSocket connection. */
interface ConnectionState {
  /** From the upgrade request's `X-Request-Id`, or made up; in every log line of the connection. */
  readonly requestId: string;
  viewer: Viewer | null;
  expiryTimer: NodeJS.Timeout | undefined;
  /** Ids of the subscriptions this connection started (some may have ended since). */
  readonly subscriptionIds: Set<string>;
}

/** One HTTP request, for its log line; the context factory fills in the caller. */
interface HttpRequestRecord {
  readonly requestId: string;
  userId: string | null;
}

type ServerContext = {
  wsViewer?: Viewer | null;
  viewerBoundToConnection?: boolean;
  httpRequest?: HttpRequestRecord;
};

function requestIdOf(request: IncomingMessage): string {
  return requestIdFrom(request.headers['x-request-id']);
}

/** A caller's `X-Request-Id` when it is sane, else a new one. */
function requestIdFrom(given: string | string[] | undefined): string {
  // randomUUID() returns a rope of ~15 cons strings (480 B); a flat copy is 56 B.
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given)
    ? given
    : Buffer.from(randomUUID(), 'latin1').toString('latin1');
}

function failureReason(error: TokenError): 'expired' | 'invalid' {
  return error.message === 'token expired' ? 'expired' : 'invalid';
}

/** The envelop functions of one operation, passed through graphql-ws's `rootValue`. */
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

function headerValue(source: unknown, name: string): string | undefined {
  if (typeof source !== 'object' || source === null) return undefined;
  for (const [key, value] of Object.entries(source)) {
    if (key.toLowerCase() === name && typeof value === 'string') return value;
  }
  return undefined;
}

const SERVER_ONLY_MESSAGE_TYPES: ReadonlySet<unknown> = new Set(['connection_ack', 'next', 'error']);

function isServerOnlyMessage(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    SERVER_ONLY_MESSAGE_TYPES.has((value as { type?: unknown }).type)
  );
}

/** yoga's message for a masked error. */
const UNEXPECTED_ERROR = 'Unexpected error.';

/** An error as a WebSocket client sees it: `extensions.http` only means something over HTTP. */
function formatForSocket(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _http, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

/** Builds the service without side effects; `start()` binds the port. */
export function buildApp({ config, kinds = BUILT_IN_KINDS, ...deps }: AppDeps): App {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics = deps.metrics ?? new Metrics();
  const registry = kinds instanceof KindRegistry ? kinds : new KindRegistry(kinds);
  const backend =
    deps.backend ??
    createEmbeddedBackend({
      dataDir: config.dataDir,
      eventRetention: config.eventRetention,
      kinds: registry,
      logger,
      observe: observeTaskEvents(metrics, logger),
    });
  const tasks = new TaskService(backend, registry, logger, {
    ...(config.rateLimitStartPerMinute > 0
      ? {
          startLimit: {
            limiter: backend.rateLimiter('start', {
              capacity: config.rateLimitStartPerMinute,
              periodMs: 60_000,
            }),
            perMinute: config.rateLimitStartPerMinute,
            onLimited: () => metrics.limitRejections.inc({ limit: 'start_rate' }),
          },
        }
      : {}),
  });
  const delivery = new Delivery(backend);
  const verifier = createTokenVerifier(config.auth);
  const connectionRegistry = new ConnectionRegistry(config.maxConnectionsPerUser);
  const revoker = new ConnectionRevoker({
    registry: connectionRegistry,
    control: backend.control,
    logger,
    onRevoked: (count) => metrics.revokedConnections.inc(count),
  });
  let draining = false;
  const health = createHealthHandler({ probe: () => backend.probe(), isDraining: () => draining });
  /** Open SSE responses, cut at drain so their clients reconnect elsewhere. */
  const eventStreams = new Set<ServerResponse>();
  const countAuthFailure = (transport: 'http' | 'ws', error: TokenError) =>
    metrics.authFailures.inc({ transport, reason: failureReason(error) });
  const httpViewer = async (header: string | null): Promise<Viewer | null> => {
    try {
      const token = bearerToken(header);
      return token === null ? null : await verifier.verify(token);
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      countAuthFailure('http', error);
      throw clientError(ErrorCode.Unauthenticated, error.message);
    }
  };
  const revokeUserConnections = (userId: string) => revoker.revoke(userId);
  const demoPage = createDemoPageHandler({ graphqlPath: GRAPHQL_PATH, logger });
  const devToken = createDevTokenHandler(config.auth);
  let devTokens: DevTokens | null = null;

  /** A client's errors pass as they are; anything else is logged and becomes "Unexpected error.". */
  const maskError = (error: unknown, message = UNEXPECTED_ERROR): GraphQLError => {
    if (error instanceof GraphQLError && (error.originalError ?? error) instanceof GraphQLError) return error;
    const original = error instanceof GraphQLError ? error.originalError : error;
    logger.error('internal error', { err: original });
    return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };
  const formatPushedError = (error: GraphQLError) => formatForSocket(maskError(error));

  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    logging: false,
    cors: config.corsOrigins.length > 0 ? { origin: [...config.corsOrigins], credentials: true } : undefined,
    plugins: [
      ...queryLimitPlugins({
        maxDepth: config.maxQueryDepth,
        maxAliases: config.maxQueryAliases,
        maxTokens: config.maxQueryTokens,
        maxCost: config.maxQueryCost,
        maxDirectives: config.maxQueryDirectives,
        introspection: config.introspection,
        onReject: (limit) => metrics.limitRejections.inc({ limit }),
      }),
      useSubscriptionMetrics(metrics),
      useSubscriptionExpiry(),
    ],
    graphiql: config.graphiql
      ? () => ({
          title: 'Task status service',
          subscriptionsProtocol: 'WS',
          headers: JSON.stringify(devTokens ? { Authorization: `Bearer ${devTokens.user}` } : {}, null, 2),
          defaultQuery: GRAPHIQL_DEFAULT_QUERY,
        })
      : false,
    renderGraphiQL: memoize(renderGraphiQL),
    maskedErrors: { maskError },
    context: async (initial: YogaInitialContext & ServerContext): Promise<GraphQLContext> => {
      const viewer =
        initial.wsViewer !== undefined
          ? initial.wsViewer
          : await httpViewer(initial.request.headers.get('authorization'));
      if (initial.httpRequest) initial.httpRequest.userId = viewer?.userId ?? null;
      return {
        viewer,
        tasks,
        delivery,
        revokeUserConnections,
        deliveryTrace: new DeliveryTrace(),
        viewerBoundToConnection: initial.viewerBoundToConnection ?? false,
      };
    },
  });

  const serveGraphQL = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBoundedBody(req, res, config.maxBodyBytes);
    if (body !== 'read') {
      if (body === 'too-large') metrics.limitRejections.inc({ limit: 'body_size' });
      return;
    }
    if (req.headers.accept?.includes('text/event-stream')) {
      eventStreams.add(res);
      res.once('close', () => eventStreams.delete(res));
    }
    const record: HttpRequestRecord = { requestId: requestIdOf(req), userId: null };
    res.setHeader('x-request-id', record.requestId);
    res.once('close', () =>
      logger.debug('http request', {
        requestId: record.requestId,
        userId: record.userId,
        method: req.method,
        status: res.statusCode,
      }),
    );
    await yoga(req, res, { httpRequest: record });
  };

  const server = createServer((req, res) => {
    if (health(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (path === METRICS_PATH && config.metrics && req.method === 'GET') {
      metrics.render(req.url).then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: unknown) => {
          logger.error('metrics rendering failed', { err });
          res.writeHead(500).end();
        },
      );
      return;
    }
    if (draining) {
      res
        .writeHead(503, {
          'content-type': 'application/json; charset=utf-8',
          connection: 'close',
          'retry-after': '1',
        })
        .end('{"errors":[{"message":"this instance is draining: retry (another instance)"}]}');
      return;
    }
    if (path === DEV_TOKEN_PATH && devToken) return devToken(req, res);
    if (demoPage(req, res)) return;
    void serveGraphQL(req, res);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxBodyBytes });
  const connections = new WeakMap<WebSocket, ConnectionState>();
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0];
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== GRAPHQL_PATH) return refuse(404, 'Not Found');
    if (draining) return refuse(503, 'Service Unavailable');
    const origin = request.headers.origin;
    if (
      origin &&
      config.corsOrigins.length > 0 &&
      !config.corsOrigins.includes('*') &&
      !config.corsOrigins.includes(origin)
    ) {
      logger.warn('websocket origin refused', { origin, requestId: requestIdOf(request) });
      metrics.limitRejections.inc({ limit: 'websocket_origin' });
      return refuse(403, 'Forbidden');
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });

  const closeForToken = (socket: WebSocket, reason: string) =>
    socket.close(CloseCode.Forbidden, `Forbidden: ${reason}`);

  const wsServer = useGraphQLWsServer<Record<string, unknown>>(
    {
      connectionInitWaitTimeout: 0,
      // A message only a server may send (next, error, connection_ack) is an invalid frame from a
      // client: refuse it while parsing, so graphql-ws closes with 4400 rather than 4500.
      jsonMessageReviver: (key: string, value: unknown) => {
        if (key === '' && isServerOnlyMessage(value)) throw new Error('message type not sent by clients');
        return value;
      },
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: result.errors.map(formatForSocket) } : undefined,
      onError: (_ctx, _id, _payload, errors) => errors.map(formatForSocket),
      onConnect: async (ctx) => {
        const { socket, upgrade } = ctx.extra;
        const header =
          headerValue(ctx.connectionParams, 'authorization') ??
          headerValue(ctx.connectionParams?.['headers'], 'authorization') ??
          upgrade.authorization;
        const state: ConnectionState = {
          requestId: requestIdFrom(upgrade.requestId),
          viewer: null,
          expiryTimer: undefined,
          subscriptionIds: new Set(),
        };
        try {
          const token = bearerToken(header);
          // Verified once per connection: no cache entry pinning the token string.
          state.viewer = token === null ? null : await verifier.verify(token, { cache: false });
        } catch (error) {
          if (!(error instanceof TokenError)) throw error;
          countAuthFailure('ws', error);
          logger.info('websocket token refused', { requestId: state.requestId, reason: error.message });
          closeForToken(socket, error.message);
          return false;
        }
        // Closed while the token was being verified: onClose has run already, register nothing.
        if (socket.readyState !== socket.OPEN) return false;
        if (state.viewer && !connectionRegistry.tryAdd(state.viewer.userId, socket)) {
          metrics.limitRejections.inc({ limit: 'connections_per_user' });
          logger.info('websocket refused: too many connections', {
            requestId: state.requestId,
            userId: state.viewer.userId,
            max: config.maxConnectionsPerUser,
          });
          socket.close(
            CloseCode.TooManyConnections,
            `Too many connections: at most ${config.maxConnectionsPerUser} per user`,
          );
          return false;
        }
        const expiresAt = state.viewer?.expiresAt;
        if (expiresAt != null) {
          state.expiryTimer = setTimeout(
            () => closeForToken(socket, 'token expired'),
            Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - Date.now())),
          );
        }
        // Only onConnect reads them, and they hold the token.
        (ctx as { connectionParams?: unknown }).connectionParams = undefined;
        connections.set(socket, state);
        logger.debug('websocket connected', {
          requestId: state.requestId,
          userId: state.viewer?.userId ?? null,
          origin: upgrade.origin ?? null,
        });
        return true;
      },
      onClose: (ctx, code, reason) => {
        const state = connections.get(ctx.extra.socket);
        clearTimeout(state?.expiryTimer);
        if (state?.viewer) connectionRegistry.remove(state.viewer.userId, ctx.extra.socket);
        logger.debug('websocket closed', {
          requestId: state?.requestId ?? null,
          userId: state?.viewer?.userId ?? null,
          code,
          reason,
        });
      },
      onSubscribe: async (ctx, id, payload) => {
        const state = connections.get(ctx.extra.socket);
        let viewer = state?.viewer ?? null;
        // GraphiQL sends its header editor's values with each operation rather than at connect.
        const operationHeader = headerValue(payload.extensions?.['headers'], 'authorization');
        let viewerBoundToConnection = true;
        if (operationHeader !== undefined) {
          try {
            const token = bearerToken(operationHeader);
            if (token !== null) {
              viewer = await verifier.verify(token);
              viewerBoundToConnection = false;
            }
          } catch (error) {
            if (error instanceof TokenError) {
              countAuthFailure('ws', error);
              return [new GraphQLError(error.message, { extensions: { code: 'UNAUTHENTICATED' } })];
            }
            throw error;
          }
        }
        if (viewer?.expiresAt != null && viewer.expiresAt <= Date.now()) {
          closeForToken(ctx.extra.socket, 'token expired');
          return [];
        }
        const enveloped = yoga.getEnveloped({
          params: payload,
          wsViewer: viewer,
          viewerBoundToConnection,
        });
        let document: ReturnType<typeof enveloped.parse>;
        try {
          document = enveloped.parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length > 0) return [...errors];
        const operation = getOperationAST(document, payload.operationName ?? undefined);
        if (operation?.operation === 'subscription' && state) {
          // graphql-ws drops an operation from ctx.subscriptions when it ends.
          for (const open of state.subscriptionIds)
            if (!(open in ctx.subscriptions)) state.subscriptionIds.delete(open);
          const max = config.maxSubscriptionsPerConnection;
          if (max > 0 && state.subscriptionIds.size >= max) {
            metrics.limitRejections.inc({ limit: 'subscriptions_per_connection' });
            return [
              new GraphQLError(`at most ${max} subscriptions per connection: complete one first`, {
                extensions: { code: ErrorCode.LimitExceeded, limit: 'subscriptionsPerConnection', max },
              }),
            ];
          }
          state.subscriptionIds.add(id);
        }
        // A subscription on the connection's own token needs none of yoga's per-result machinery
        // (its token's expiry closes the socket): its results are pushed straight to the socket.
        const pushed = operation?.operation === 'subscription' && viewerBoundToConnection;
        const root: EnvelopedRoot = {
          execute: enveloped.execute,
          subscribe: pushed
            ? (args) =>
                pushSubscription(args, {
                  id,
                  send: ctx.extra.send,
                  formatError: formatPushedError,
                  maskError,
                  observe: () => observeSubscription(metrics, args),
                })
            : enveloped.subscribe,
        };
        return {
          schema: enveloped.schema,
          document,
          operationName: payload.operationName ?? null,
          variableValues: payload.variables ?? null,
          contextValue: await enveloped.contextFactory(),
          rootValue: root,
        };
      },
    },
    wss,
    {
      logger,
      keepAliveMs: config.keepAliveMs,
      connectionInitTimeoutMs: config.connectionInitTimeoutMs,
      maxBufferedBytes: config.slowConsumerBytes,
      onSlowConsumer: ({ socket }) => {
        metrics.slowConsumerDisconnects.inc();
        const state = connections.get(socket);
        logger.warn('slow consumer: websocket closed', {
          requestId: state?.requestId ?? null,
          userId: state?.viewer?.userId ?? null,
          bufferedBytes: socket.bufferedAmount,
          max: config.slowConsumerBytes,
        });
      },
    },
  );
  metrics.setSources({
    openConnections: () => wss.clients.size,
    queueDepth: () => backend.queue.depth(),
  });

  let started = false;
  return {
    server,
    async start() {
      if (config.auth.mode === 'secret' && config.auth.ephemeral) {
        const secret = config.auth.secret;
        devTokens = {
          userId: 'demo-user',
          user: await mintToken(secret, 'demo-user', { expiresIn: '30d' }),
          serviceId: 'demo-service',
          service: await mintToken(secret, 'demo-service', { service: true, expiresIn: '30d' }),
        };
      }
      await backend.startWorkers(config.workerConcurrency);
      await revoker.start();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      started = true;
      const { port } = server.address() as AddressInfo;
      const host = config.host.includes(':') ? `[${config.host}]` : config.host;
      return { url: `http://${host}:${port}${GRAPHQL_PATH}`, port, devTokens };
    },
    async stop({ graceMs = 0 } = {}) {
      draining = true;
      revoker.stop();
      for (const stream of eventStreams) stream.socket?.destroy();
      await wsServer.dispose();
      server.closeIdleConnections();
      await backend.stopWorkers(graceMs);
      if (started) {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await closed;
      }
      await backend.close();
    },
  };
}

/**
 * {@link buildApp} with the backend the configuration asks for: Redis when `REDIS_URL` is set
 * (throws `RedisUnavailableError` when it does not answer in time), embedded otherwise.
 */
export async function createApp(deps: AppDeps): Promise<App> {
  const { config } = deps;
  if (deps.backend || config.redisUrl === undefined) return buildApp(deps);
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics = deps.metrics ?? new Metrics();
  const kinds =
    deps.kinds instanceof KindRegistry ? deps.kinds : new KindRegistry(deps.kinds ?? BUILT_IN_KINDS);
  const backend = await createRedisBackend({
    ...redisOptionsFromConfig(config),
    kinds,
    logger,
    observe: observeTaskEvents(metrics, logger),
    onRedisError: () => metrics.redisErrors.inc(),
  });
  return buildApp({ ...deps, logger, kinds, backend, metrics });
}

function memoize<T>(render: (options: T) => string): (options: T) => string {
  const cache = new Map<string, string>();
  return (options) => {
    const key = JSON.stringify(options);
    let html = cache.get(key);
    if (html === undefined) {
      if (cache.size > 16) cache.clear();
      html = render(options);
      cache.set(key, html);
    }
    return html;
  };
}

const GRAPHIQL_DEFAULT_QUERY = `# Task status service. The Headers tab holds a token for the demo user.
#
# 1. Run "Listen" in this tab: it waits for completions (over WebSocket).
# 2. Open a new tab, paste "Start" and run it: the completion arrives here.

subscription Listen {
  taskCompleted(userId: "demo-user") {
    cursor
    replayed
    task { id kind status result error { code message } finishedAt }
  }
}

mutation Start {
  startTask(input: { kind: "sleep", input: { ms: 2000 } }) { id status }
}

query Recent {
  viewer { userId roles lastEventCursor }
  tasks(first: 5) { edges { node { id kind status progress } } pageInfo { hasNextPage endCursor } }
  taskKinds { name description inputSchema }
}
`;
