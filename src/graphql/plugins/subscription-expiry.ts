import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../../schema/builder.js';
import { clientError, ErrorCode } from '../error-mapper.js';
import { SubscriptionStream } from '../subscription-stream.js';

/**
 * Ends a subscription with UNAUTHENTICATED "token expired" when the token that authorised it
 * expires: an SSE stream, or a WebSocket operation that carried its own token (GraphiQL's
 * headers). A subscription on its connection's token needs none of this: the socket closes with
 * 4403 then, and the client reconnects with a fresh token.
 */
export function useSubscriptionExpiry(): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result }) {
          const context = args.contextValue as Partial<GraphQLContext>;
          const expiresAt = context.viewer?.expiresAt;
          if (context.viewerBoundToConnection || expiresAt == null) return;
          if (!(result instanceof SubscriptionStream)) return;
          result.endAt(expiresAt, () =>
            clientError(ErrorCode.Unauthenticated, 'token expired: subscribe again with a fresh token'),
          );
        },
      };
    },
  };
}
