import { UnavailableError, type UnavailablePart } from '../../tasks/errors.js';
import type {
  CreateOutcome,
  RateDecision,
  RateLimiter,
  ReadEventsOptions,
  RevocationStore,
  TaskChange,
  TaskListQuery,
  TaskPage,
  TaskRepository,
} from '../../tasks/ports.js';
import type { Task, TaskEvent } from '../../tasks/task.js';

/**
 * Replies and client errors that say Redis cannot be reached or cannot serve now (as opposed to
 * a bug or bad data, e.g. WRONGTYPE): a fail-fast client's timeout and offline refusals, a closed
 * connection, a cluster without a node for the slot, a server loading its data set.
 */
const UNAVAILABLE_MESSAGES = [
  /^Command timed out$/,
  /enableOfflineQueue options is false/,
  /^Connection is closed/,
  /^(LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|BUSY)\b/,
  /Failed to refresh slots cache/,
  /None of startup nodes is available/,
];
const UNAVAILABLE_NAMES = new Set(['MaxRetriesPerRequestError', 'ClusterAllFailedError']);
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH']);

/** Whether `error` says Redis could not be reached or could not serve (see {@link UNAVAILABLE_MESSAGES}). */
export function isRedisUnavailable(error: unknown): error is Error {
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (
    UNAVAILABLE_NAMES.has(error.name) ||
    (code !== undefined && UNAVAILABLE_CODES.has(code)) ||
    UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(error.message))
  );
}

/** `error` as an {@link UnavailableError} when Redis was unreachable, else `error` itself. */
export function asUnavailable(error: unknown, part: UnavailablePart, retryAfterMs: number): unknown {
  if (error instanceof UnavailableError || !isRedisUnavailable(error)) return error;
  return new UnavailableError(`redis (${part}) unavailable: ${error.message}`, part, retryAfterMs);
}

/** Runs `work`, turning an unreachable Redis into an {@link UnavailableError}. */
export async function guarded<T>(
  part: UnavailablePart,
  retryAfterMs: number,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw asUnavailable(error, part, retryAfterMs);
  }
}

/**
 * Rejects with {@link UnavailableError} when `work` has not settled within `timeoutMs`. For calls
 * on a client that waits for Redis (pub/sub publishes): the command itself stays queued and is sent
 * once Redis is back, so use it only where a late send is harmless.
 */
export async function withDeadline<T>(
  part: UnavailablePart,
  timeoutMs: number,
  retryAfterMs: number,
  work: Promise<T>,
): Promise<T> {
  if (timeoutMs <= 0) return guarded(part, retryAfterMs, () => work);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () =>
        reject(new UnavailableError(`redis (${part}): no answer within ${timeoutMs} ms`, part, retryAfterMs)),
      timeoutMs,
    );
  });
  try {
    return await guarded(part, retryAfterMs, () => Promise.race([work, late]));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The request side of the store: every call of `inner` (a repository on a fail-fast client) whose
 * Redis could not answer in time rejects with `UnavailableError(…, 'store', retryAfterMs)`, which
 * clients see as SERVICE_UNAVAILABLE with Retry-After.
 */
export class UnavailableTranslatingRepository implements TaskRepository {
  readonly #inner: TaskRepository;
  readonly #retryAfterMs: number;

  constructor(inner: TaskRepository, retryAfterMs: number) {
    this.#inner = inner;
    this.#retryAfterMs = retryAfterMs;
  }

  #store<T>(work: () => Promise<T>): Promise<T> {
    return guarded('store', this.#retryAfterMs, work);
  }

  createMany(tasks: readonly Task[]): Promise<CreateOutcome[]> {
    return this.#store(() => this.#inner.createMany(tasks));
  }
  findByIdempotencyKey(userId: string, key: string): Promise<Task | null> {
    return this.#store(() => this.#inner.findByIdempotencyKey(userId, key));
  }
  get(id: string): Promise<Task | null> {
    return this.#store(() => this.#inner.get(id));
  }
  list(query: TaskListQuery): Promise<TaskPage> {
    return this.#store(() => this.#inner.list(query));
  }
  transition(id: string, change: TaskChange, seen?: Task): Promise<TaskEvent | null> {
    return this.#store(() => this.#inner.transition(id, change, seen));
  }
  readEvents(userId: string, after: string | null, options: ReadEventsOptions): Promise<TaskEvent[]> {
    return this.#store(() => this.#inner.readEvents(userId, after, options));
  }
  lastCursor(userId: string): Promise<string> {
    return this.#store(() => this.#inner.lastCursor(userId));
  }
  compareCursors(a: string, b: string): number {
    return this.#inner.compareCursors(a, b);
  }
  assertCursor(cursor: string): void {
    this.#inner.assertCursor(cursor);
  }
}

/** {@link UnavailableTranslatingRepository}'s counterpart for the revocation store (read by every token check). */
export function unavailableTranslatingRevocations(
  inner: RevocationStore,
  retryAfterMs: number,
): RevocationStore {
  return {
    revokeBefore: (userId, before) =>
      guarded('store', retryAfterMs, () => inner.revokeBefore(userId, before)),
    revokedBefore: (userId) => guarded('store', retryAfterMs, () => inner.revokedBefore(userId)),
  };
}

/** {@link UnavailableTranslatingRepository}'s counterpart for a rate limiter (taken on every start). */
export function unavailableTranslatingLimiter(inner: RateLimiter, retryAfterMs: number): RateLimiter {
  return {
    take: (key): Promise<RateDecision> => guarded('store', retryAfterMs, () => inner.take(key)),
    giveBack: (key) => guarded('store', retryAfterMs, () => inner.giveBack(key)),
  };
}
