import {
  createSourceEventStream,
  type ExecutionArgs,
  type ExecutionResult,
  execute,
  GraphQLError,
  type GraphQLFormattedError,
  getOperationAST,
  getVariableValues,
} from 'graphql';
import { ErrorCode } from '../errors.js';
import { AsyncQueue } from '../lib/async-queue.js';
import type { IterableHooks } from '../lib/observe-iterable.js';
import { compileEventExecutor, type EventExecutor } from './event-executor.js';

/** How a pushed subscription reaches its client. */
export interface PushTarget {
  /** The graphql-ws operation id. */
  readonly id: string;
  /** Sends one text frame, in order with the protocol's own frames. */
  readonly send: (frame: string) => void;
  /** A result's error as the client sees it (internal errors masked). */
  readonly formatError: (error: GraphQLError) => GraphQLFormattedError;
  /** An error as the client may see it: internal errors masked. */
  readonly maskError: (error: unknown) => GraphQLError;
  /** Called once the stream has started; told of each result sent and of the end. */
  readonly observe?: () => IterableHooks<unknown>;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function isPromiseLike<T>(value: unknown): value is PromiseLike<T> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<T>).then === 'function';
}

/**
 * A GraphQL subscription over graphql-ws whose results skip the async-iterator pipeline: each
 * event of the source stream is executed and written to the socket as a `next` frame in the same
 * tick, with no promise, wrapper iterator or per-layer closure per event.
 *
 * Everything else stays GraphQL's: the source stream comes from the root field's `subscribe`
 * resolver (authorization, `after` replay and the live seam are the resolver's), each event is
 * executed against the operation's selection set with the operation's variables, and the stream's
 * end and errors reach graphql-ws through the returned iterator, which yields nothing and settles
 * when the stream ends: graphql-ws then sends `complete` (or `error`) after every `next` frame.
 *
 * Returns an {@link ExecutionResult} with errors when the stream cannot start.
 */
export async function pushSubscription(
  args: ExecutionArgs,
  target: PushTarget,
): Promise<AsyncIterableIterator<never> | ExecutionResult> {
  // As yoga's executor does: variables that do not fit their definitions are the caller's error.
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
            extensions: { ...error.extensions, code: ErrorCode.BadUserInput },
          }),
      ),
    };
  }
  const source = await createSourceEventStream({ ...args, rootValue: undefined });
  if (!isAsyncIterable(source)) {
    return source.errors
      ? { ...source, errors: source.errors.map((error) => target.maskError(error)) }
      : source;
  }
  const hooks = target.observe?.();
  return new PushedStream(
    source,
    args,
    { id: target.id, send: target.send, formatError: target.formatError, maskError: target.maskError },
    hooks,
  );
}

class StreamSink {
  constructor(readonly stream: PushedStream) {}
  next(value: unknown): void {
    this.stream.push(value);
  }
  end(failure?: { readonly error: unknown }): void {
    this.stream.end(failure);
  }
}

class PushedStream implements AsyncIterableIterator<never> {
  readonly #source: AsyncIterable<unknown>;
  readonly #args: ExecutionArgs;
  readonly #target: PushTarget;
  readonly #hooks: IterableHooks<unknown> | undefined;
  /** The selection compiled for the operation's variables; `null`: graphql-js per event. */
  readonly #executor: EventExecutor | null;
  /** `{"id":…,"type":"next","payload":` */
  readonly #head: string;
  #settled: Promise<IteratorResult<never>> | undefined;
  #resolve: ((result: IteratorResult<never>) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  /** Results still being executed asynchronously, so that frames keep the events' order. */
  #pending: Promise<void> | undefined;
  #done = false;
  /** The consumer stopped: nothing more is sent. */
  #returned = false;

  constructor(
    source: AsyncIterable<unknown>,
    args: ExecutionArgs,
    target: PushTarget,
    hooks: IterableHooks<unknown> | undefined,
  ) {
    this.#hooks = hooks;
    this.#executor = compileEventExecutor(args);
    this.#source = source;
    this.#args = args;
    this.#target = target;
    this.#head = `{"id":${JSON.stringify(target.id)},"type":"next","payload":`;
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
    const source = this.#source;
    if (source instanceof AsyncQueue) {
      source.pipeTo(new StreamSink(this));
    } else {
      void this.#iterate(source);
    }
    return this.#settled;
  }

  async return(): Promise<IteratorResult<never>> {
    this.#returned = true;
    const iterator = this.#source[Symbol.asyncIterator]();
    this.end();
    await iterator.return?.();
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<never>> {
    await this.return();
    throw error;
  }

  async #iterate(source: AsyncIterable<unknown>): Promise<void> {
    try {
      for await (const value of source) {
        if (this.#done) return;
        this.push(value);
      }
      this.end();
    } catch (error) {
      this.end({ error });
    }
  }

  /** Executes and sends one event of the source (the queue's sink calls this). */
  push(value: unknown): void {
    if (this.#done) return;
    let result: ReturnType<typeof execute>;
    try {
      // graphql-js is the reference: it makes the result whenever the compiled plan declines.
      result = this.#executor?.(value) ?? execute({ ...this.#args, rootValue: value });
    } catch (error) {
      this.end({ error });
      return;
    }
    if (!this.#pending && !isPromiseLike(result)) {
      this.#send(result);
      return;
    }
    const previous = this.#pending ?? Promise.resolve();
    const next = previous
      .then(() => result)
      .then(
        (settled) => this.#send(settled),
        (error: unknown) => this.end({ error }),
      );
    this.#pending = next;
    void next.then(() => {
      if (this.#pending === next) this.#pending = undefined;
    });
  }

  #send(result: ExecutionResult): void {
    if (this.#returned) return;
    const { formatError, send } = this.#target;
    const payload = result.errors ? { ...result, errors: result.errors.map(formatError) } : result;
    send(`${this.#head}${JSON.stringify(payload)}}`);
    this.#hooks?.onValue?.(undefined);
  }

  /** Ends the stream (the queue's sink calls this): settles the pending `next()` after any result still executing. */
  end(failure?: { readonly error: unknown }): void {
    if (this.#done) return;
    this.#done = true;
    const settle = () => {
      this.#hooks?.onEnd?.();
      if (failure) this.#reject?.(this.#target.maskError(failure.error));
      else this.#resolve?.({ done: true, value: undefined });
    };
    // Results still executing are sent before the end.
    if (this.#pending) void this.#pending.then(settle);
    else settle();
  }
}
