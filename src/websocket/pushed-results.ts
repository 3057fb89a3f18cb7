import type { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import type { ResultSink, SubscriptionStream } from '../graphql/subscription-stream.js';

/** How one subscription's results reach its socket. */
export interface PushTarget {
  /** The graphql-ws operation id. */
  readonly id: string;
  /** Sends one text frame, in order with graphql-ws's own frames. */
  readonly send: (frame: string) => void;
  /** A result's error as the client sees it. */
  readonly formatError: (error: GraphQLError) => GraphQLFormattedError;
  /** The error a failed stream ends with, as graphql-ws will send it. */
  readonly maskError: (error: unknown) => GraphQLError;
}

/**
 * Writes a subscription's results straight to its socket as graphql-ws `next` frames, and stands
 * in for the result iterator graphql-ws awaits: it yields nothing and settles when the stream
 * ends, so graphql-ws sends `complete` (or `error`) after every `next` frame. One promise per
 * subscription instead of one per event per layer.
 */
export class PushedResults implements AsyncIterableIterator<never> {
  readonly #stream: SubscriptionStream;
  readonly target: PushTarget;
  /** `{"id":…,"type":"next","payload":` */
  readonly head: string;
  #settled: Promise<IteratorResult<never>> | undefined;
  #resolve: ((result: IteratorResult<never>) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;

  constructor(stream: SubscriptionStream, target: PushTarget) {
    this.#stream = stream;
    this.target = target;
    this.head = `{"id":${JSON.stringify(target.id)},"type":"next","payload":`;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Starts the stream on the first call; settles when it ends. */
  next(): Promise<IteratorResult<never>> {
    if (this.#settled) return this.#settled;
    this.#settled = new Promise<IteratorResult<never>>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#stream.pipeTo(new SocketSink(this));
    return this.#settled;
  }

  async return(): Promise<IteratorResult<never>> {
    await this.#stream.return();
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<never>> {
    await this.return();
    throw error;
  }

  /** The stream ended: graphql-ws's pending read settles. */
  settle(failure?: { readonly error: unknown }): void {
    if (failure) this.#reject?.(this.target.maskError(failure.error));
    else this.#resolve?.({ done: true, value: undefined });
  }
}

/** The stream's sink: one small object per subscription, no closures. */
class SocketSink implements ResultSink {
  constructor(readonly pushed: PushedResults) {}

  next(result: ExecutionResult): void {
    const { target, head } = this.pushed;
    const payload = result.errors ? { ...result, errors: result.errors.map(target.formatError) } : result;
    target.send(`${head}${JSON.stringify(payload)}}`);
  }

  end(failure?: { readonly error: unknown }): void {
    this.pushed.settle(failure);
  }
}
