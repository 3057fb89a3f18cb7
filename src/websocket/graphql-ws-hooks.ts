import { type ExecutionArgs, GraphQLError, type GraphQLFormattedError, getOperationAST } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import type { WebSocket } from 'ws';
import type { RevocationList } from '../auth/revocation-list.js';
import { bearerToken, TokenError, type TokenVerifier } from '../auth/tokens.js';
import type { Viewer } from '../auth/viewer.js';
import type { Config } from '../config.js';
import { ErrorCode } from '../graphql/error-mapper.js';
import { PushedSubscription } from '../graphql/plugins/subscription-streams.js';
import { type TrustedDocuments, withEmptyQueryForPersisted } from '../graphql/plugins/trusted-documents.js';
import type { SubscriptionStream } from '../graphql/subscription-stream.js';
import type { GraphQLEndpoint } from '../graphql/yoga.js';
import { requestIdFrom } from '../http/request-id.js';
import { MAX_TIMER_MS } from '../lib/timers.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CloseCode } from './close-codes.js';
import type { ConnectionRegistry } from './connection-registry.js';
import type { WsExtra } from './graphql-ws-server.js';
import { PushedResults } from './pushed-results.js';

/** What the server keeps per WebSocket connection. */
interface ConnectionState {
  /** From the upgrade request's `X-Request-Id`, or made up; in every log line of the connection. */
  readonly requestId: string;
  viewer: Viewer | null;
  expiryTimer: NodeJS.Timeout | undefined;
  /** Closes a connection without a token that authenticates no operation in time. */
  graceTimer: NodeJS.Timeout | undefined;
  /**
   * The users of the tokens its operations carried, for which it is registered (and counted
   * against their `MAX_CONNECTIONS_PER_USER`) besides its own token's user; made on the first.
   */
  operationUsers: Set<string> | undefined;
  /** Ids of the subscriptions this connection started (some may have ended since). */
  readonly subscriptionIds: Set<string>;
}

/** The envelop functions of one operation, passed through graphql-ws's `rootValue` (yoga's recipe). */
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
export function formatForSocket(error: GraphQLError): GraphQLFormattedError {
  const formatted = error.toJSON();
  if (!formatted.extensions || !('http' in formatted.extensions)) return formatted;
  const { http: _http, ...extensions } = formatted.extensions;
  return { ...formatted, extensions };
}

export interface GraphQLWsHooksOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly graphql: GraphQLEndpoint;
  /** Refuses revoked tokens too (`revocationCheckingVerifier`). */
  readonly verifier: TokenVerifier;
  /** What this gateway knows of revocations, checked again just before a registration. */
  readonly revocations: RevocationList;
  readonly registry: ConnectionRegistry;
  /** The one mapper from thrown errors to client errors. */
  readonly maskError: (error: unknown) => GraphQLError;
  /** The same trusted documents as the HTTP pipeline's. */
  readonly trustedDocuments: TrustedDocuments;
}

/** graphql-ws's callbacks for this service, and what the socket adapter asks of it. */
export interface GraphQLWsHooks {
  readonly options: ServerOptions<Record<string, unknown>, WsExtra>;
  /** Logs a socket closed as a slow consumer, with its caller. */
  readonly onSlowConsumer: (extra: WsExtra) => void;
}

/**
 * What happens on a graphql-ws connection: the token is verified at `connection_init`
 * (`connectionParams.authorization`, or the upgrade request's `Authorization` header) and the
 * socket closes with 4403 when it expires or its user's tokens are revoked; the per-user connection
 * cap (4420); an operation may bring its own token (GraphiQL's headers), which registers the
 * connection for that user too and counts against the same cap (the operation is refused with
 * LIMIT_EXCEEDED); a connection without a token at connect that authenticates no operation within
 * `ANONYMOUS_SOCKET_GRACE_MS` is closed with 4403; the per-connection subscription cap; the trusted
 * document named by `extensions.persistedQuery` (text refused with `PERSISTED_OPERATIONS_ONLY`);
 * then the operation runs through yoga's pipeline, which pushes subscription results straight to
 * the socket.
 */
export function createGraphQLWsHooks({
  config,
  logger,
  metrics,
  graphql,
  verifier,
  revocations,
  registry,
  maskError,
  trustedDocuments,
}: GraphQLWsHooksOptions): GraphQLWsHooks {
  const connections = new WeakMap<WebSocket, ConnectionState>();
  const closeForToken = (socket: WebSocket, reason: string) =>
    socket.close(CloseCode.Forbidden, `Forbidden: ${reason}`);
  const formatPushedError = (error: GraphQLError) => formatForSocket(maskError(error));

  /**
   * Registers an open connection for the user of a token one of its operations carried; the error
   * that refuses the operation otherwise.
   */
  const registerOperationViewer = (socket: WebSocket, state: ConnectionState, viewer: Viewer) => {
    // Closed while the token was being verified: onClose has run already, register nothing.
    if (socket.readyState !== socket.OPEN) return new GraphQLError('connection closed');
    if (revocations.isKnownRevoked(viewer)) {
      return new GraphQLError('token revoked', { extensions: { code: ErrorCode.Unauthenticated } });
    }
    const { userId } = viewer;
    if (!registry.tryAdd(userId, socket, viewer.issuedAt)) {
      const max = config.maxConnectionsPerUser;
      metrics.limitRejections.inc({ limit: 'connections_per_user' });
      logger.info('websocket operation refused: too many connections', {
        requestId: state.requestId,
        userId,
        max,
      });
      return new GraphQLError(`at most ${max} connections per user: close one first`, {
        extensions: { code: ErrorCode.LimitExceeded, limit: 'connectionsPerUser', max },
      });
    }
    if (userId !== state.viewer?.userId) {
      state.operationUsers ??= new Set();
      state.operationUsers.add(userId);
    }
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    return null;
  };

  const options: ServerOptions<Record<string, unknown>, WsExtra> = {
    connectionInitWaitTimeout: 0,
    // A message only a server may send (next, error, connection_ack) is an invalid frame from a
    // client: refuse it while parsing, so graphql-ws closes with 4400 rather than 4500.
    jsonMessageReviver: (key: string, value: unknown) => {
      if (key !== '') return value;
      if (isServerOnlyMessage(value)) throw new Error('message type not sent by clients');
      return withEmptyQueryForPersisted(value);
    },
    execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
    subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
    // The pipeline hands a pushed subscription back as a marker: graphql-ws awaits its stand-in.
    onOperation: (_ctx, _id, _payload, _args, result) =>
      result instanceof PushedSubscription ? result.results : undefined,
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
        graceTimer: undefined,
        operationUsers: undefined,
        subscriptionIds: new Set(),
      };
      try {
        const token = bearerToken(header);
        // Verified once per connection: no cache entry pinning the token string.
        state.viewer = token === null ? null : await verifier.verify(token, { cache: false });
      } catch (error) {
        if (!(error instanceof TokenError)) throw error;
        metrics.authFailed('ws', error);
        logger.info('websocket token refused', { requestId: state.requestId, reason: error.message });
        closeForToken(socket, error.message);
        return false;
      }
      // Closed while the token was being verified: onClose has run already, register nothing.
      if (socket.readyState !== socket.OPEN) return false;
      // Revoked after the verifier looked: the revocation did not find this socket to close.
      if (state.viewer && revocations.isKnownRevoked(state.viewer)) {
        metrics.authFailed('ws', new TokenError('token revoked'));
        closeForToken(socket, 'token revoked');
        return false;
      }
      if (state.viewer && !registry.tryAdd(state.viewer.userId, socket, state.viewer.issuedAt)) {
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
      if (!state.viewer) {
        const graceMs = config.anonymousSocketGraceMs;
        state.graceTimer = setTimeout(
          () => closeForToken(socket, `no token: authenticate within ${graceMs} ms of connecting`),
          graceMs,
        );
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
      clearTimeout(state?.graceTimer);
      if (state?.viewer) registry.remove(state.viewer.userId, ctx.extra.socket);
      for (const userId of state?.operationUsers ?? []) registry.remove(userId, ctx.extra.socket);
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
            metrics.authFailed('ws', error);
            return [new GraphQLError(error.message, { extensions: { code: ErrorCode.Unauthenticated } })];
          }
          throw error;
        }
      }
      if (viewer?.expiresAt != null && viewer.expiresAt <= Date.now()) {
        closeForToken(ctx.extra.socket, 'token expired');
        return [];
      }
      if (!viewerBoundToConnection && viewer && state) {
        const refused = registerOperationViewer(ctx.extra.socket, state, viewer);
        if (refused) return [refused];
      }
      // yoga's onParams (the persisted operations plugin) runs for HTTP only: the same rules here.
      const query = trustedDocuments.resolve(payload);
      if (query instanceof GraphQLError) return [query];
      const { send } = ctx.extra;
      const enveloped = graphql.getEnveloped({
        params: { ...payload, query },
        wsViewer: viewer,
        viewerBoundToConnection,
        connectionId: state?.requestId,
        pushResults: (stream: SubscriptionStream) =>
          new PushedResults(stream, { id, send, formatError: formatPushedError, maskError }),
      });
      let document: ReturnType<typeof enveloped.parse>;
      try {
        document = enveloped.parse(query);
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
  };

  return {
    options,
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
  };
}
