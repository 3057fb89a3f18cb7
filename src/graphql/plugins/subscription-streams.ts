import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { SubscriptionStream, subscribeToStream } from '../subscription-stream.js';

/**
 * What a transport that writes results itself puts in the server context it hands to yoga (the
 * WebSocket transport): given an operation's result stream, it starts delivering it and returns
 * the iterator its protocol awaits in its place.
 */
export interface PushingTransport {
  readonly pushResults?: (stream: SubscriptionStream) => AsyncIterableIterator<never>;
}

/**
 * The pipeline's answer to a subscription whose transport delivers the results itself: to envelop
 * an empty result, so that no plugin wraps (per subscription, for good) a stream whose events it
 * would never see; the transport takes {@link results} in its place (graphql-ws's `onOperation`).
 */
export class PushedSubscription implements ExecutionResult {
  declare readonly data?: undefined;
  constructor(readonly results: AsyncIterableIterator<never>) {}
}

/**
 * Every subscription's results are a {@link SubscriptionStream}, whatever the transport: this
 * plugin replaces the executor's `subscribe` with {@link subscribeToStream}. Plugins listed
 * before it hook into the stream in their `onSubscribeResult` (metrics, token expiry); then,
 * when the transport pushes ({@link PushingTransport}), the stream is handed to it, so its
 * results skip the per-event iterator chain while passing the same hooks. List it last.
 */
export function useSubscriptionStreams(): Plugin<PushingTransport> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribeToStream);
      return {
        onSubscribeResult({ args, result, setResult }) {
          const push = (args.contextValue as PushingTransport).pushResults;
          if (push && result instanceof SubscriptionStream) setResult(new PushedSubscription(push(result)));
        },
      };
    },
  };
}
