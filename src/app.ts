import { createServer, type Server } from 'node:http';
import { createDevTokenHandler } from './auth/dev-token.js';
import { RevocationList, revocationCheckingVerifier } from './auth/revocation-list.js';
import { createTokenVerifier, mintToken } from './auth/tokens.js';
import { type BackendParts, backendFor, embeddedBackendFor } from './backends/backend-for-config.js';
import type { Config } from './config.js';
import { createMaskError } from './graphql/error-mapper.js';
import { RevocableSubscriptions } from './graphql/plugins/subscription-revocation.js';
import { TrustedDocuments } from './graphql/plugins/trusted-documents.js';
import { createGraphQLEndpoint, GRAPHQL_PATH } from './graphql/yoga.js';
import { createDemoPageHandler } from './http/demo-page.js';
import type { DevTokens } from './http/graphiql.js';
import { closeNow, listen } from './http/listen.js';
import { createOpsRoutes, listenOps, METRICS_PATH, type OpsServer } from './http/ops-routes.js';
import { createRouter } from './http/router.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './observability/metrics.js';
import { Delivery } from './tasks/delivery.js';
import { KindRegistry } from './tasks/kind-registry.js';
import { BUILT_IN_KINDS } from './tasks/kinds/index.js';
import type { TaskKind } from './tasks/kinds/kind.js';
import type { Backend } from './tasks/ports.js';
import { TaskService } from './tasks/task-service.js';
import { ConnectionRegistry } from './websocket/connection-registry.js';
import { ConnectionRevoker } from './websocket/connection-revoker.js';
import { createGraphQLWsHooks } from './websocket/graphql-ws-hooks.js';
import { createWebSocketEndpoint } from './websocket/websocket-endpoint.js';

export { GRAPHQL_PATH } from './graphql/yoga.js';
export type { DevTokens } from './http/graphiql.js';
export { METRICS_PATH } from './http/ops-routes.js';

export interface AppDeps {
  readonly config: Config;
  /** @default the backend the configuration asks for ({@link backendFor}) */
  readonly backend?: Backend;
  /** @default the built-in kinds */
  readonly kinds?: readonly TaskKind[] | KindRegistry;
  /** @default a JSON logger at `config.logLevel` */
  readonly logger?: Logger;
  /** @default a registry of this app's own */
  readonly metrics?: Metrics;
}

export interface App {
  /**
   * Starts workers and listens; resolves with the bound address, and where `/metrics` is served
   * apart (`METRICS_PORT`; null when it is not set).
   */
  start(): Promise<{ url: string; port: number; devTokens: DevTokens | null; metricsUrl: string | null }>;
  /**
   * Drains and stops: `/readyz` answers 503 and new requests and WebSocket upgrades get 503, open
   * WebSockets are closed with 1001 and SSE streams cut (clients reconnect elsewhere and resume),
   * running tasks get `graceMs` to finish and the rest are handed back to the queue; then the
   * server stops listening and the store is closed.
   */
  stop(options?: StopOptions): Promise<void>;
  /** The GraphQL pipeline as a fetch function, for in-process calls without a port. */
  fetch(url: string, init?: RequestInit): Promise<Response>;
  readonly server: Server;
}

export interface StopOptions {
  /** How long running tasks may take to finish before they are handed back. @default 0 */
  readonly graceMs?: number;
}

/** The defaults of {@link AppDeps}, filled in once. */
function resolveParts({ config, kinds = BUILT_IN_KINDS, ...deps }: AppDeps): BackendParts {
  return {
    kinds: kinds instanceof KindRegistry ? kinds : new KindRegistry(kinds),
    logger: deps.logger ?? createLogger(config.logLevel),
    metrics: deps.metrics ?? new Metrics(),
  };
}

/**
 * The service with the backend the configuration asks for: Redis when `REDIS_URL` is set (throws
 * `RedisUnavailableError` when it does not answer in time), embedded otherwise.
 */
export async function createApp(deps: AppDeps): Promise<App> {
  const parts = resolveParts(deps);
  const backend = deps.backend ?? (await backendFor(deps.config, parts));
  return buildApp({ ...deps, ...parts, backend });
}

/** Builds the service without side effects (embedded backend unless one is given); `start()` binds the port. */
export function buildApp(deps: AppDeps): App {
  const { config } = deps;
  const { kinds, logger, metrics } = resolveParts(deps);
  const backend = deps.backend ?? embeddedBackendFor(config, { kinds, logger, metrics });
  let draining = false;
  const isDraining = () => draining;
  let devTokens: DevTokens | null = null;

  // The domain.
  const tasks = new TaskService(backend, kinds, logger, {
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

  // Connections and their revocation across gateways: every token is checked against its user's
  // revocation, and a revocation ends the user's sockets and SSE streams on every gateway.
  const revocations = new RevocationList(backend.revocations);
  const verifier = revocationCheckingVerifier(createTokenVerifier(config.auth), revocations);
  const registry = new ConnectionRegistry(config.maxConnectionsPerUser);
  const revocableSubscriptions = new RevocableSubscriptions(revocations);
  const revoker = new ConnectionRevoker({
    targets: [registry, revocableSubscriptions],
    revocations,
    control: backend.control,
    logger,
    onRevoked: (count) => metrics.revokedConnections.inc(count),
  });

  // The edge: one GraphQL pipeline, reached over HTTP/SSE and over graphql-ws.
  const maskError = createMaskError(logger);
  const trustedDocuments = TrustedDocuments.ofSdk(config.persistedOperationsOnly);
  const graphql = createGraphQLEndpoint({
    config,
    metrics,
    tasks,
    delivery,
    verifier,
    maskError,
    trustedDocuments,
    revokeUserConnections: (userId) => revoker.revoke(userId),
    revocableSubscriptions,
    devTokens: () => devTokens,
  });
  const opsRoutes = (serveMetrics: boolean) =>
    createOpsRoutes({ probe: () => backend.probe(), isDraining, metrics, serveMetrics, logger });
  const router = createRouter({
    logger,
    metrics,
    // In production metrics stay off the public port: only METRICS_PORT serves them.
    ops: opsRoutes(config.metrics && !config.production),
    graphql,
    devToken: createDevTokenHandler(config.auth),
    demoPage: createDemoPageHandler({ graphqlPath: GRAPHQL_PATH, logger }),
    maxBodyBytes: config.maxBodyBytes,
    isDraining,
  });
  const websocket = createWebSocketEndpoint({
    config,
    logger,
    metrics,
    isDraining,
    hooks: createGraphQLWsHooks({
      config,
      logger,
      metrics,
      graphql,
      verifier,
      revocations,
      registry,
      maskError,
      trustedDocuments,
    }),
  });
  const server = createServer(router.handle);
  server.on('upgrade', websocket.handleUpgrade);
  metrics.setSources({
    openConnections: websocket.openConnections,
    queueDepth: () => backend.queue.depth(),
  });

  let started = false;
  let metricsServer: OpsServer | undefined;
  return {
    server,
    fetch: async (url, init = {}) => graphql.fetch(url, init, {}),
    async start() {
      if (config.auth.mode === 'secret' && config.auth.ephemeral) {
        const { secret, issuer, audience } = config.auth;
        const claims = { issuer, audience };
        devTokens = {
          userId: 'demo-user',
          user: await mintToken(secret, 'demo-user', { expiresIn: '30d', ...claims }),
          serviceId: 'demo-service',
          service: await mintToken(secret, 'demo-service', { service: true, expiresIn: '30d', ...claims }),
        };
      }
      await backend.startWorkers(config.workerConcurrency);
      await revoker.start();
      const { port, origin } = await listen(server, config.port, config.host);
      started = true;
      if (config.metricsPort !== undefined) {
        metricsServer = await listenOps(opsRoutes(config.metrics), config.metricsPort, config.metricsHost);
      }
      const metricsUrl = metricsServer ? `${metricsServer.url}${METRICS_PATH}` : null;
      return { url: `${origin}${GRAPHQL_PATH}`, port, devTokens, metricsUrl };
    },
    async stop({ graceMs = 0 } = {}) {
      draining = true;
      revoker.stop();
      router.cutEventStreams();
      await websocket.dispose();
      server.closeIdleConnections();
      await backend.stopWorkers(graceMs);
      if (started) await closeNow(server);
      await metricsServer?.close();
      await backend.close();
    },
  };
}
