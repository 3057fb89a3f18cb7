import {
  createSourceEventStream,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  getOperationAST,
  getVariableValues,
} from 'graphql';
import { isAsyncIterable, isPromiseLike } from '../lib/async-iterable.js';
import { AsyncQueue, type QueueSink } from '../lib/async-queue.js';
import { MAX_TIMER_MS } from '../lib/timers.js';
import { compileEventExecutor, type EventExecutor } from './event-executor.js';

/** Told of a subscription's results and of its end, whichever transport delivers it. */
export interface StreamObserver {
  /** Each result handed to the consumer, with the source event it was executed from. */
  onResult?(event: unknown): void;
  /** Once, when the stream ends for any reason: done, failed, expired or stopped by the consumer. */
  onEnd?(): void;
}

/** Where a stream in push mode ({@link SubscriptionStream.pipeTo}) hands its results. */
export interface ResultSink {
  /** Each result, in order, in the tick its event arrived when its execution is synchronous. */
  next(result: ExecutionResult): void;
  /** Once, after the last result: `failure` when the stream failed. */
  end(failure?: { readonly error: unknown }): void;
}

/**
 * The results of one GraphQL subscription: each event of the source stream (the root field's
 * `subscribe` resolver: authorization, replay and the live seam are the resolver's) executed
 * against the operation's selection set.
 *
 * Every subscription, whatever its transport, is one of these, so the plugins that care about
 * results (metrics, token expiry) hook into it the same way for all of them ({@link observe},
 * {@link endAt}) instead of wrapping the iterator. It is consumed one of two ways:
 * - **pull**: as an async iterator of results (yoga's SSE and any generic consumer);
 * - **push**: {@link pipeTo} hands each result to a sink in the tick its event arrives, with no
 *   promise, wrapper iterator or closure per event (the WebSocket transport).
 *
 * Each event runs through a selection plan compiled once per document (`event-executor.ts`);
 * graphql-js `execute` makes the result whenever the plan declines, so errors stay graphql-js's.
 */
export class SubscriptionStream implements AsyncIterableIterator<ExecutionResult> {
  readonly #source: AsyncIterable<unknown>;
  readonly #args: ExecutionArgs;
  /** The selection compiled for the operation; `null`: graphql-js per event. */
  readonly #executor: EventExecutor | null;
  readonly #observers: StreamObserver[] = [];
  #sink: ResultSink | undefined;
  /** Pull mode's buffer, made on the first `next()`. */
  #pulled: AsyncQueue<ExecutionResult> | undefined;
  /** Results still executing asynchronously, so that results keep the events' order. */
  #pending: Promise<void> | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #done = false;
  /** How the stream ended before a consumer came; {@link pipeTo} hands it to the sink. */
  #endedUnconsumed: { readonly failure?: { readonly error: unknown } } | undefined;

  constructor(source: AsyncIterable<unknown>, args: ExecutionArgs) {
    this.#source = source;
    this.#args = args;
    this.#executor = compileEventExecutor(args);
  }

  /** Adds an observer; call before the stream is consumed. */
  observe(observer: StreamObserver): void {
    this.#observers.push(observer);
  }

  /**
   * Ends the stream at `deadline` (epoch ms): the source is stopped and the consumer gets
   * `error()` after the results already made.
   */
  endAt(deadline: number, error: () => Error): void {
    const arm = () => {
      const wait = deadline - Date.now();
      if (wait > 0) {
        this.#deadline = setTimeout(arm, Math.min(wait, MAX_TIMER_MS));
        return;
      }
      this.#deadline = undefined;
      this.end(error());
    };
    arm();
  }

  /**
   * Ends the stream now (a revocation): the source is stopped and the consumer gets `error` after
   * the results already made, even when it starts consuming only later.
   */
  end(error: Error): void {
    // Ended first: stopping the source reports an ordinary end.
    this.#end({ error });
    this.#stopSource();
  }

  /** Push mode: starts the stream; each result goes to `sink`, then its end. */
  pipeTo(sink: ResultSink): void {
    if (this.#sink) throw new Error('SubscriptionStream: already consumed');
    if (this.#done) {
      const ended = this.#endedUnconsumed;
      this.#endedUnconsumed = undefined;
      if (ended) sink.end(ended.failure);
      return;
    }
    this.#sink = sink;
    const source = this.#source;
    if (source instanceof AsyncQueue) source.pipeTo(new SourceSink(this));
    else void this.#iterate(source);
  }

  /** Pull mode: the next result. */
  next(): Promise<IteratorResult<ExecutionResult>> {
    if (!this.#pulled) {
      // The consumer stopped reading: release the source (the queue also closes when the stream ends).
      const pulled = new AsyncQueue<ExecutionResult>(() => {
        if (!this.#done) void this.return();
      });
      this.#pulled = pulled;
      this.pipeTo({
        next: (result) => pulled.push(result),
        end: (failure) => (failure ? pulled.fail(failure.error) : pulled.end()),
      });
    }
    return this.#pulled.next();
  }

  /** Executes and delivers one event of the source (the source queue's sink calls this). */
  accept(event: unknown): void {
    this.#push(event);
  }

  /** The source ended (the source queue's sink calls this). */
  sourceEnded(failure?: { readonly error: unknown }): void {
    this.#end(failure);
  }

  /** The consumer stops: the source is released, nothing more is delivered. */
  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.#stopSource();
    this.#end();
    await this.#pulled?.return();
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async #iterate(source: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const value of source) {
        if (this.#done) return;
        this.#push(value);
      }
      this.#end();
    } catch (error) {
      this.#end({ error });
    }
  }

  #push(event: unknown): void {
    if (this.#done) return;
    let result: ReturnType<typeof execute>;
    try {
      result = this.#executor?.(event) ?? execute({ ...this.#args, rootValue: event });
    } catch (error) {
      this.#end({ error });
      return;
    }
    if (!this.#pending && !isPromiseLike(result)) {
      this.#deliver(result, event);
      return;
    }
    const previous = this.#pending ?? Promise.resolve();
    const next = previous
      .then(() => result)
      .then(
        (settled) => this.#deliver(settled, event),
        (error: unknown) => this.#end({ error }),
      );
    this.#pending = next;
    void next.then(() => {
      if (this.#pending === next) this.#pending = undefined;
    });
  }

  #deliver(result: ExecutionResult, event: unknown): void {
    const sink = this.#sink;
    if (!sink) return;
    sink.next(result);
    for (const observer of this.#observers) observer.onResult?.(event);
  }

  #stopSource(): void {
    const iterator = this.#source[Symbol.asyncIterator]();
    void iterator.return?.()?.then(undefined, () => {});
  }

  /** Ends once, after any result still executing. */
  #end(failure?: { readonly error: unknown }): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#deadline);
    const settle = () => {
      for (const observer of this.#observers) observer.onEnd?.();
      const sink = this.#sink;
      this.#sink = undefined;
      if (sink) sink.end(failure);
      else this.#endedUnconsumed = failure ? { failure } : {};
    };
    if (this.#pending) void this.#pending.then(settle);
    else settle();
  }
}

/** The source queue's sink: one small object per stream, no closures. */
class SourceSink implements QueueSink<unknown> {
  constructor(readonly stream: SubscriptionStream) {}
  next(event: unknown): void {
    this.stream.accept(event);
  }
  end(failure?: { readonly error: unknown }): void {
    this.stream.sourceEnded(failure);
  }
}

/**
 * graphql's `subscribe` with the results made by a {@link SubscriptionStream}. Returns an
 * {@link ExecutionResult} with errors when the stream cannot start: variables that do not fit
 * their definitions (BAD_USER_INPUT, as yoga's executor says), or the root field refusing.
 */
export async function subscribeToStream(args: ExecutionArgs): Promise<SubscriptionStream | ExecutionResult> {
  const operation = getOperationAST(args.document, args.operationName);
  const variables = getVariableValues(
    args.schema,
    operation?.variableDefinitions ?? [],
    args.variableValues ?? {},
    { maxErrors: 50 },
  );
  if (variables.errors) {
    return {
      errors: variables.errors.map(
        (error) =>
          new GraphQLError(error.message, {
            nodes: error.nodes ?? null,
            originalError: error.originalError,
            extensions: { ...error.extensions, code: 'BAD_USER_INPUT' },
          }),
      ),
    };
  }
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source;
  return new SubscriptionStream(source, args);
}
