import type { GraphQLError } from 'graphql';
import { createYoga, type YogaInitialContext, type YogaServerInstance } from 'graphql-yoga';
import { bearerToken, TokenError, type TokenVerifier } from '../auth/tokens.js';
import type { Viewer } from '../auth/viewer.js';
import type { Config } from '../config.js';
import { type DevTokens, graphiqlOptions, renderGraphiQLOnce } from '../http/graphiql.js';
import { createOriginPolicy } from '../http/origin-policy.js';
import type { Metrics } from '../observability/metrics.js';
import { graphqlTracingPlugins } from '../observability/tracing.js';
import type { GraphQLContext } from '../schema/builder.js';
import { schema } from '../schema/index.js';
import type { Delivery } from '../tasks/delivery.js';
import type { TaskService } from '../tasks/task-service.js';
import { clientError, ErrorCode } from './error-mapper.js';
import { queryLimitPlugins } from './plugins/query-limits.js';
import { useRequestParseErrors } from './plugins/request-parse-errors.js';
import { useSubscriptionExpiry } from './plugins/subscription-expiry.js';
import { useSubscriptionMetrics } from './plugins/subscription-metrics.js';
import { type RevocableSubscriptions, useSubscriptionRevocation } from './plugins/subscription-revocation.js';
import { type PushingTransport, useSubscriptionStreams } from './plugins/subscription-streams.js';
import { type TrustedDocuments, useTrustedDocuments } from './plugins/trusted-documents.js';

export const GRAPHQL_PATH = '/graphql';

/** One HTTP request, for its log line; the context factory fills in the caller. */
export interface HttpRequestRecord {
  readonly requestId: string;
  userId: string | null;
}

/** What a transport hands yoga with each request or operation. */
export interface ServerContext extends PushingTransport {
  /** A WebSocket operation's caller, verified by the transport (`null`: none). */
  readonly wsViewer?: Viewer | null;
  /** See {@link GraphQLContext.viewerBoundToConnection}. */
  readonly viewerBoundToConnection?: boolean;
  readonly httpRequest?: HttpRequestRecord;
  /** The WebSocket connection's request id, for traces (HTTP operations have `httpRequest`). */
  readonly connectionId?: string | undefined;
}

export type GraphQLEndpoint = YogaServerInstance<ServerContext, GraphQLContext>;

export interface GraphQLEndpointOptions {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly tasks: TaskService;
  readonly delivery: Delivery;
  /** Refuses revoked tokens too (`revocationCheckingVerifier`). */
  readonly verifier: TokenVerifier;
  /** The one mapper from thrown errors to client errors (`error-mapper.ts`). */
  readonly maskError: (error: unknown, message?: string) => GraphQLError;
  /** The trusted documents, shared with the graphql-ws hooks (one rule for every transport). */
  readonly trustedDocuments: TrustedDocuments;
  readonly revokeUserConnections: (userId: string) => Promise<number>;
  /** Where SSE subscriptions are tracked, so that a revocation ends them. */
  readonly revocableSubscriptions: RevocableSubscriptions;
  /** Shown in GraphiQL's Headers tab when set. */
  readonly devTokens: () => DevTokens | null;
}

/**
 * The GraphQL pipeline every operation goes through, over HTTP, SSE and WebSocket alike: yoga
 * and envelop with the trusted documents (accepted by hash; `PERSISTED_OPERATIONS_ONLY` refuses any
 * other), the query limits, the subscription metrics and token expiry, and the
 * subscription streams (which push results straight to a WebSocket); the caller is taken from
 * the transport (WebSocket) or from the `Authorization` header (HTTP).
 */
export function createGraphQLEndpoint({
  config,
  metrics,
  tasks,
  delivery,
  verifier,
  maskError,
  trustedDocuments,
  revokeUserConnections,
  revocableSubscriptions,
  devTokens,
}: GraphQLEndpointOptions): GraphQLEndpoint {
  const httpViewer = async (header: string | null): Promise<Viewer | null> => {
    try {
      const token = bearerToken(header);
      return token === null ? null : await verifier.verify(token);
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      metrics.authFailed('http', error);
      throw clientError(ErrorCode.Unauthenticated, error.message);
    }
  };
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    landingPage: false,
    logging: false,
    cors: createOriginPolicy(config).cors,
    // The router has read the body within MAX_BODY_BYTES (`readBoundedBody`) before yoga sees it.
    // yoga's own limit would pipe that buffer through a counting TransformStream (a node stream
    // pipeline, its AbortSignal and a DOMException at its end, per request) and lose the body's
    // buffer fast path for `request.json()`.
    maxRequestBodySize: false,
    plugins: [
      // Empty unless tracing is on: the operation's span wraps everything after it.
      ...graphqlTracingPlugins(),
      useRequestParseErrors(),
      // HTTP and SSE (yoga's onParams); graphql-ws-hooks applies the same rules to WebSocket operations.
      useTrustedDocuments(trustedDocuments),
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
      useSubscriptionRevocation(revocableSubscriptions),
      useSubscriptionStreams(),
    ],
    graphiql: config.graphiql ? graphiqlOptions(devTokens) : false,
    renderGraphiQL: renderGraphiQLOnce,
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
        viewerBoundToConnection: initial.viewerBoundToConnection ?? false,
      };
    },
  });
}
