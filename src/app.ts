import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import { type ExecutionArgs, GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Context as WsContext } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaInitialContext } from 'graphql-yoga';
import { type WebSocket, WebSocketServer } from 'ws';
import { bearerToken, createTokenVerifier, mintToken, TokenError, viewerFromHeader } from './auth/tokens.js';
import type { Viewer } from './auth/viewer.js';
import { CloseCode } from './close-codes.js';
import type { Config } from './config.js';
import { createLogger, type Logger } from './logger.js';
import type { GraphQLContext } from './schema/builder.js';
import { schema } from './schema/index.js';
import type { Backend } from './store/ports.js';
import { createRedisBackend } from './store/redis/redis-backend.js';
import { createEmbeddedBackend } from './store/sqlite/embedded-backend.js';
import { Delivery } from './tasks/delivery.js';
import { KindRegistry } from './tasks/kind-registry.js';
import { BUILT_IN_KINDS } from './tasks/kinds/index.js';
import type { TaskKind } from './tasks/kinds/kind.js';
import { TaskService } from './tasks/task-service.js';

export const GRAPHQL_PATH = '/graphql';
/** Largest WebSocket message accepted; a larger one closes the socket with 1009. */
const MAX_WS_MESSAGE_BYTES = 1_048_576;
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
  /** Closes WebSockets with 1001, stops listening, hands running tasks back and closes the store. */
  stop(): Promise<void>;
  readonly server: Server;
}

/** What the server keeps per WebSocket connection. */
interface ConnectionState {
  viewer: Viewer | null;
  expiryTimer: NodeJS.Timeout | undefined;
}

type WsExtra = { socket: WebSocket; request: IncomingMessage };
type ServerContext = { wsViewer?: Viewer | null };

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
  const registry = kinds instanceof KindRegistry ? kinds : new KindRegistry(kinds);
  const backend =
    deps.backend ??
    createEmbeddedBackend({
      dataDir: config.dataDir,
      eventRetention: config.eventRetention,
      kinds: registry,
      logger,
    });
  const tasks = new TaskService(backend, registry, logger);
  const delivery = new Delivery(backend);
  const verifier = createTokenVerifier(config.auth);
  let devTokens: DevTokens | null = null;

  const yoga = createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    logging: false,
    cors: config.corsOrigins.length > 0 ? { origin: [...config.corsOrigins], credentials: true } : undefined,
    graphiql: config.graphiql
      ? () => ({
          title: 'Task status service',
          subscriptionsProtocol: 'WS',
          headers: JSON.stringify(devTokens ? { Authorization: `Bearer ${devTokens.user}` } : {}, null, 2),
          defaultQuery: GRAPHIQL_DEFAULT_QUERY,
        })
      : false,
    renderGraphiQL: memoize(renderGraphiQL),
    maskedErrors: {
      maskError(error, message) {
        const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
        if (original instanceof GraphQLError) return error as Error;
        logger.error('internal error', { err: original });
        return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      },
    },
    context: async (initial: YogaInitialContext & ServerContext): Promise<GraphQLContext> => {
      const viewer =
        initial.wsViewer !== undefined
          ? initial.wsViewer
          : await viewerFromHeader(verifier, initial.request.headers.get('authorization'));
      return { viewer, tasks, delivery };
    },
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path === '/' && req.method === 'GET') {
      res.writeHead(302, { location: GRAPHQL_PATH }).end();
      return;
    }
    void yoga(req, res);
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WS_MESSAGE_BYTES });
  const connections = new WeakMap<WsContext, ConnectionState>();
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '').split('?')[0];
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== GRAPHQL_PATH) return refuse(404, 'Not Found');
    const origin = request.headers.origin;
    if (
      origin &&
      config.corsOrigins.length > 0 &&
      !config.corsOrigins.includes('*') &&
      !config.corsOrigins.includes(origin)
    ) {
      logger.warn('websocket origin refused', { origin });
      return refuse(403, 'Forbidden');
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });

  const closeForToken = (socket: WebSocket, reason: string) =>
    socket.close(CloseCode.Forbidden, `Forbidden: ${reason}`);

  const wsServer = useServer<Record<string, unknown>, WsExtra>(
    {
      connectionInitWaitTimeout: config.connectionInitTimeoutMs,
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
        const header =
          headerValue(ctx.connectionParams, 'authorization') ??
          headerValue(ctx.connectionParams?.['headers'], 'authorization') ??
          ctx.extra.request.headers.authorization;
        const state: ConnectionState = { viewer: null, expiryTimer: undefined };
        try {
          const token = bearerToken(header);
          state.viewer = token === null ? null : await verifier.verify(token);
        } catch (error) {
          if (!(error instanceof TokenError)) throw error;
          logger.info('websocket token refused', { reason: error.message });
          closeForToken(ctx.extra.socket, error.message);
          return false;
        }
        const expiresAt = state.viewer?.expiresAt;
        if (expiresAt != null) {
          state.expiryTimer = setTimeout(
            () => closeForToken(ctx.extra.socket, 'token expired'),
            Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - Date.now())),
          );
        }
        connections.set(ctx, state);
        logger.debug('websocket connected', { userId: state.viewer?.userId ?? null });
        return true;
      },
      onClose: (ctx, code, reason) => {
        const state = connections.get(ctx);
        clearTimeout(state?.expiryTimer);
        logger.debug('websocket closed', { userId: state?.viewer?.userId ?? null, code, reason });
      },
      onSubscribe: async (ctx, _id, payload) => {
        let viewer = connections.get(ctx)?.viewer ?? null;
        // GraphiQL sends its header editor's values with each operation rather than at connect.
        const operationHeader = headerValue(payload.extensions?.['headers'], 'authorization');
        if (operationHeader !== undefined) {
          try {
            const token = bearerToken(operationHeader);
            if (token !== null) viewer = await verifier.verify(token);
          } catch (error) {
            if (error instanceof TokenError) {
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
          ...ctx,
          req: ctx.extra.request,
          params: payload,
          wsViewer: viewer,
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
        const root: EnvelopedRoot = { execute: enveloped.execute, subscribe: enveloped.subscribe };
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
    config.keepAliveMs,
  );

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
    async stop() {
      await wsServer.dispose();
      if (started) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
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
  const kinds =
    deps.kinds instanceof KindRegistry ? deps.kinds : new KindRegistry(deps.kinds ?? BUILT_IN_KINDS);
  const backend = await createRedisBackend({
    url: config.redisUrl,
    keyPrefix: config.redisKeyPrefix,
    eventRetention: config.eventRetention,
    connectTimeoutMs: config.redisConnectTimeoutMs,
    lockDurationMs: config.workerLockMs,
    kinds,
    logger,
  });
  return buildApp({ ...deps, logger, kinds, backend });
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
