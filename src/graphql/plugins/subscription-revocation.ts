import type { Plugin } from 'graphql-yoga';
import { issuedBefore, type RevocationList } from '../../auth/revocation-list.js';
import type { Viewer } from '../../auth/viewer.js';
import type { GraphQLContext } from '../../schema/builder.js';
import { clientError, ErrorCode } from '../error-mapper.js';
import { SubscriptionStream } from '../subscription-stream.js';
import type { PushingTransport } from './subscription-streams.js';

const revokedError = () =>
  clientError(ErrorCode.Unauthenticated, 'token revoked: subscribe again with a fresh token');

/**
 * The open subscriptions of this gateway that no WebSocket carries (SSE), by user, with the issue
 * time of the token that authorised each, so that revoking the user's tokens ends them. A
 * WebSocket's subscriptions end with their socket, which the connection registry closes.
 */
export class RevocableSubscriptions {
  readonly #revocations: RevocationList;
  readonly #byUser = new Map<string, Map<SubscriptionStream, number | null>>();

  constructor(revocations: RevocationList) {
    this.#revocations = revocations;
  }

  /**
   * Tracks `stream` until it ends; ends it at once when a revocation this gateway knows of already
   * refuses the viewer's token (one that landed after the token was checked).
   */
  add(viewer: Viewer, stream: SubscriptionStream): void {
    if (this.#revocations.isKnownRevoked(viewer)) {
      stream.end(revokedError());
      return;
    }
    const { userId } = viewer;
    let streams = this.#byUser.get(userId);
    if (!streams) {
      streams = new Map();
      this.#byUser.set(userId, streams);
    }
    streams.set(stream, viewer.issuedAt);
    stream.observe({
      onEnd: () => {
        const open = this.#byUser.get(userId);
        open?.delete(stream);
        if (open?.size === 0) this.#byUser.delete(userId);
      },
    });
  }

  /** Users with a tracked subscription here. */
  users(): Iterable<string> {
    return this.#byUser.keys();
  }

  /**
   * Ends with UNAUTHENTICATED "token revoked" every subscription of `userId` authorised by a token
   * issued before `revokedBefore` (see {@link issuedBefore}); returns how many.
   */
  revoke(userId: string, revokedBefore: number): number {
    const streams = this.#byUser.get(userId);
    if (!streams) return 0;
    const revoked = [...streams].filter(([, issuedAt]) => issuedBefore(issuedAt, revokedBefore));
    for (const [stream] of revoked) stream.end(revokedError());
    return revoked.length;
  }
}

/**
 * Registers each subscription that no WebSocket carries (SSE) in `subscriptions`, so that
 * `revokeUserConnections` ends it. List it before `useSubscriptionStreams`.
 */
export function useSubscriptionRevocation(subscriptions: RevocableSubscriptions): Plugin<GraphQLContext> {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ args, result }) {
          if (!(result instanceof SubscriptionStream)) return;
          const context = args.contextValue as Partial<GraphQLContext> & PushingTransport;
          if (context.pushResults || !context.viewer) return;
          subscriptions.add(context.viewer, result);
        },
      };
    },
  };
}
