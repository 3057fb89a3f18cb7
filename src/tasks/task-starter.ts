import type { Viewer } from '../auth/viewer.js';
import type { Logger } from '../logger.js';
import {
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  RateLimitedError,
  TaskServiceError,
} from './errors.js';
import type { KindRegistry } from './kind-registry.js';
import type { Backend, CreateOutcome, RateLimiter } from './ports.js';
import { type Json, newTask, type Task, TaskStatus } from './task.js';
import { taskTracer } from './task-tracing.js';
import { assertId, assertUserId } from './user-id.js';

export interface StartTaskArgs {
  readonly kind: string;
  readonly input?: Json | undefined;
  readonly userId?: string | undefined;
  readonly idempotencyKey?: string | undefined;
}

/** Rate of starts per user: a token bucket per caller (service callers are not limited). */
export interface StartLimit {
  readonly limiter: RateLimiter;
  /** For the error message. */
  readonly perMinute: number;
  /** Told of each start refused. */
  readonly onLimited?: () => void;
}

/** Inputs of one bulk start at most. */
export const MAX_START_BATCH = 1_000;
const MAX_INPUT_BYTES = 1_048_576;

/** One input's outcome of a bulk start, in the order of the inputs. */
export type StartOutcome =
  | { readonly ok: true; readonly task: Task }
  | { readonly ok: false; readonly error: TaskServiceError };

/** An input that passed every check, on its way to the store. */
interface Candidate {
  readonly index: number;
  readonly task: Task;
}

/**
 * Starting tasks, one or a batch: every input is checked first (user id, who may start for whom,
 * kind, idempotency key, input size, the kind's input schema), so a refused input takes no
 * rate-limit token. Then a token is taken per input, the new tasks are stored in one batch and
 * queued in one batch. An idempotent repeat costs nothing: when the store reports a key taken
 * (`created: false`) the token goes back, and when the bucket is empty the key is looked up before
 * answering RATE_LIMITED, so a retry always gets its task. Inputs of one batch sharing a user and
 * key are one task: the first input's.
 */
export class TaskStarter {
  readonly #backend: Backend;
  readonly #kinds: KindRegistry;
  readonly #logger: Logger;
  readonly #limit: StartLimit | undefined;

  constructor(backend: Backend, kinds: KindRegistry, logger: Logger, limit: StartLimit | undefined) {
    this.#backend = backend;
    this.#kinds = kinds;
    this.#logger = logger;
    this.#limit = limit;
  }

  /**
   * Starts each input's task (see the class). Throws {@link InvalidInputError} for more than
   * {@link MAX_START_BATCH} inputs; a failure of the store or the queue is thrown for the whole
   * call (tasks stored before it stay stored, and an idempotency key finds them on a retry, which
   * queues them again; a stored task without a key is never run: the caller cannot find it).
   */
  startMany(viewer: Viewer, inputs: readonly StartTaskArgs[]): Promise<StartOutcome[]> {
    if (inputs.length > MAX_START_BATCH) {
      return Promise.reject(
        new InvalidInputError('inputs', `at most ${MAX_START_BATCH} per call, got ${inputs.length}`),
      );
    }
    return taskTracer().startTasks(inputs.length, (traceContext) =>
      this.#startMany(viewer, inputs, traceContext),
    );
  }

  async #startMany(
    viewer: Viewer,
    inputs: readonly StartTaskArgs[],
    traceContext: string | undefined,
  ): Promise<StartOutcome[]> {
    const outcomes: StartOutcome[] = new Array(inputs.length);
    const leaders: Candidate[] = [];
    /** Inputs repeating an earlier input's user and key: they get that input's task. */
    const followers: { candidate: Candidate; leader: Candidate }[] = [];
    const byKey = new Map<string, Candidate>();
    inputs.forEach((input, index) => {
      const checked = settle(() => this.#check(viewer, input, traceContext));
      if (!checked.ok) {
        outcomes[index] = checked;
        return;
      }
      const candidate = { index, task: checked.task };
      const { userId, idempotencyKey } = candidate.task;
      const key = idempotencyKey === null ? null : `${userId}\n${idempotencyKey}`;
      const leader = key === null ? undefined : byKey.get(key);
      if (leader) followers.push({ candidate, leader });
      else {
        if (key !== null) byKey.set(key, candidate);
        leaders.push(candidate);
      }
    });

    const allowed = await this.#takeTokens(viewer, leaders, outcomes);
    await this.#store(viewer, allowed, outcomes);
    for (const { candidate, leader } of followers) {
      const first = outcomes[leader.index];
      outcomes[candidate.index] =
        first?.ok === true
          ? settle(() => sameTaskOrConflict(first.task, candidate.task))
          : (first as StartOutcome);
    }
    return outcomes;
  }

  /** The input as a new task, or the domain error that refuses it. */
  #check(viewer: Viewer, args: StartTaskArgs, traceContext: string | undefined): Task {
    const userId = args.userId ?? viewer.userId;
    assertUserId(userId);
    if (userId !== viewer.userId && !viewer.isService) {
      throw new ForbiddenError('only a service caller may start a task on behalf of another user');
    }
    const kind = this.#kinds.get(args.kind);
    if (!kind) {
      throw new InvalidInputError('kind', `unknown task kind ${JSON.stringify(args.kind)}`, {
        knownKinds: this.#kinds.list().map((k) => k.name),
      });
    }
    const key = args.idempotencyKey;
    if (key !== undefined) assertId('idempotencyKey', key);
    const rawInput = args.input ?? {};
    if (Buffer.byteLength(JSON.stringify(rawInput)) > MAX_INPUT_BYTES) {
      throw new InvalidInputError('input', `larger than ${MAX_INPUT_BYTES} bytes`);
    }
    const parsed = this.#kinds.parseInput(kind, rawInput);
    if (!parsed.ok) {
      const [first] = parsed.problems;
      throw new InvalidInputError(first?.path ?? 'input', first?.message ?? 'invalid', {
        problems: parsed.problems,
      });
    }
    return newTask({
      userId,
      kind: kind.name,
      input: parsed.value,
      external: kind.external,
      idempotencyKey: key ?? null,
      traceContext,
    });
  }

  /**
   * One token per candidate from the caller's bucket, in input order (the takes are sent together,
   * and the bucket answers them in order). A refused candidate with a key its user used before
   * gets that task; the others RATE_LIMITED. Returns the candidates that got a token.
   */
  async #takeTokens(viewer: Viewer, candidates: Candidate[], outcomes: StartOutcome[]): Promise<Candidate[]> {
    const limit = this.#limitFor(viewer);
    if (!limit || candidates.length === 0) return candidates;
    const decisions = await Promise.all(candidates.map(() => limit.limiter.take(viewer.userId)));
    await Promise.all(
      candidates.map(async (candidate, i) => {
        const decision = decisions[i];
        if (decision && !decision.allowed) {
          outcomes[candidate.index] = await this.#refused(candidate, decision.retryAfterMs, limit);
        }
      }),
    );
    return candidates.filter((_candidate, i) => decisions[i]?.allowed !== false);
  }

  /** A candidate the bucket refused: the task its key already holds, else RATE_LIMITED. */
  async #refused(candidate: Candidate, retryAfterMs: number, limit: StartLimit): Promise<StartOutcome> {
    const { userId, idempotencyKey } = candidate.task;
    const earlier =
      idempotencyKey === null ? null : await this.#backend.tasks.findByIdempotencyKey(userId, idempotencyKey);
    if (earlier) return settle(() => sameTaskOrConflict(earlier, candidate.task));
    limit.onLimited?.();
    return {
      ok: false,
      error: new RateLimitedError(
        `startTask: at most ${limit.perMinute} per minute per user; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
        retryAfterMs,
        'startTask',
      ),
    };
  }

  /** The caller's rate limit; service callers have none. */
  #limitFor(viewer: Viewer): StartLimit | undefined {
    return viewer.isService ? undefined : this.#limit;
  }

  /**
   * Stores the candidates in one batch and queues the ones that our workers run: the new ones, and
   * those an idempotency key found still QUEUED. Queueing a task that has its job already adds
   * nothing; one whose start failed after it was stored (the job add failed, or the gateway
   * stopped) gets its job now, so repeating a failed start always gets the task run.
   */
  async #store(viewer: Viewer, candidates: Candidate[], outcomes: StartOutcome[]): Promise<void> {
    if (candidates.length === 0) return;
    const limit = this.#limitFor(viewer);
    let stored: CreateOutcome[];
    try {
      stored = await this.#backend.tasks.createMany(candidates.map((candidate) => candidate.task));
    } catch (error) {
      if (limit) await this.#giveBack(limit.limiter, viewer.userId, candidates.length);
      throw error;
    }
    const queued: Task[] = [];
    let unspent = 0;
    candidates.forEach((candidate, i) => {
      const result = stored[i];
      if (!result) throw new Error(`the store answered ${stored.length} of ${candidates.length} creations`);
      if (!result.created) {
        unspent++;
        const repeat = settle(() => sameTaskOrConflict(result.task, candidate.task));
        outcomes[candidate.index] = repeat;
        if (repeat.ok && repeat.task.status === TaskStatus.Queued && !repeat.task.external) {
          queued.push(repeat.task);
        }
        return;
      }
      this.#logger.debug('task started', {
        taskId: result.task.id,
        userId: result.task.userId,
        kind: result.task.kind,
        by: viewer.userId,
      });
      outcomes[candidate.index] = { ok: true, task: result.task };
      if (!result.task.external) queued.push(result.task);
    });
    if (limit && unspent > 0) await this.#giveBack(limit.limiter, viewer.userId, unspent);
    if (queued.length > 0) await this.#backend.queue.enqueue(queued);
  }

  /** Tokens that bought nothing go back; failing that only costs the caller those tokens. */
  async #giveBack(limiter: RateLimiter, key: string, count: number): Promise<void> {
    try {
      await Promise.all(Array.from({ length: count }, () => limiter.giveBack(key)));
    } catch (error) {
      this.#logger.warn('rate-limit token not given back', { err: error });
    }
  }
}

/** `check()`'s task, or the domain error it threw; anything else is not the caller's doing and is thrown. */
function settle(check: () => Task): StartOutcome {
  try {
    return { ok: true, task: check() };
  } catch (error) {
    if (error instanceof TaskServiceError) return { ok: false, error };
    throw error;
  }
}

/** The task an idempotency key already holds, unless this call asked for another kind or input. */
function sameTaskOrConflict(stored: Task, asked: Task): Task {
  if (stored.kind !== asked.kind || JSON.stringify(stored.input) !== JSON.stringify(asked.input)) {
    throw new ConflictError(
      `idempotencyKey ${JSON.stringify(asked.idempotencyKey)} was already used for task ${stored.id} with another kind or input`,
      { taskId: stored.id },
    );
  }
  return stored;
}
