import type { Viewer } from '../auth/viewer.js';
import type { Logger } from '../logger.js';
import {
  ConflictError,
  ForbiddenError,
  InvalidCursorError,
  InvalidInputError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
} from './errors.js';
import type { KindRegistry } from './kind-registry.js';
import type { Backend, RateLimiter, TaskPage } from './ports.js';
import { isFinal, type Json, newTask, type Task, type TaskStatus } from './task.js';
import * as transitions from './transitions.js';

export interface StartTaskArgs {
  readonly kind: string;
  readonly input?: Json | undefined;
  readonly userId?: string | undefined;
  readonly idempotencyKey?: string | undefined;
}

export interface ListTasksArgs {
  readonly userId?: string | undefined;
  readonly status?: readonly TaskStatus[] | undefined;
  readonly first?: number | undefined;
  readonly after?: string | undefined;
}

export interface TaskServiceOptions {
  /**
   * Rate of `startTask` per user: a token bucket per caller (service callers are not limited).
   * Unset: unlimited.
   */
  readonly startLimit?: {
    readonly limiter: RateLimiter;
    /** For the error message. */
    readonly perMinute: number;
    /** Told of each call refused. */
    readonly onLimited?: () => void;
  };
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;
const MAX_ID_LENGTH = 200;
const MAX_INPUT_BYTES = 1_048_576;

/** Throws {@link UnauthenticatedError} unless there is a verified caller. */
export function requireViewer(viewer: Viewer | null): Viewer {
  if (!viewer) throw new UnauthenticatedError();
  return viewer;
}

/** Throws {@link ForbiddenError} unless the caller is `userId` or a service. */
export function assertCanActFor(viewer: Viewer, userId: string): void {
  if (viewer.userId !== userId && !viewer.isService) {
    throw new ForbiddenError(`user ${viewer.userId} may not access the tasks of user ${userId}`);
  }
}

function assertService(viewer: Viewer, what: string): void {
  if (!viewer.isService) throw new ForbiddenError(`${what} needs the service role`);
}

function assertId(field: string, value: string): void {
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new InvalidInputError(field, `must be 1 to ${MAX_ID_LENGTH} characters`);
  }
}

/**
 * The domain operations behind the GraphQL fields, with authorization: a user acts on their own
 * tasks, a service caller on anyone's.
 */
export class TaskService {
  readonly #backend: Backend;
  readonly #logger: Logger;
  readonly #startLimit: TaskServiceOptions['startLimit'];
  readonly kinds: KindRegistry;

  constructor(backend: Backend, kinds: KindRegistry, logger: Logger, options: TaskServiceOptions = {}) {
    this.#backend = backend;
    this.kinds = kinds;
    this.#logger = logger;
    this.#startLimit = options.startLimit;
  }

  async start(viewer: Viewer, args: StartTaskArgs): Promise<Task> {
    const userId = args.userId ?? viewer.userId;
    assertId('userId', userId);
    if (userId !== viewer.userId && !viewer.isService) {
      throw new ForbiddenError('only a service caller may start a task on behalf of another user');
    }
    if (this.#startLimit && !viewer.isService) {
      const decision = await this.#startLimit.limiter.take(viewer.userId);
      if (!decision.allowed) {
        this.#startLimit.onLimited?.();
        throw new RateLimitedError(
          `startTask: at most ${this.#startLimit.perMinute} per minute per user; retry in ${Math.ceil(decision.retryAfterMs / 1000)} s`,
          decision.retryAfterMs,
          'startTask',
        );
      }
    }
    const kind = this.kinds.get(args.kind);
    if (!kind) {
      throw new InvalidInputError('kind', `unknown task kind ${JSON.stringify(args.kind)}`, {
        knownKinds: this.kinds.list().map((k) => k.name),
      });
    }
    if (
      args.idempotencyKey !== undefined &&
      (args.idempotencyKey.length === 0 || args.idempotencyKey.length > 200)
    ) {
      throw new InvalidInputError('idempotencyKey', 'must be 1 to 200 characters');
    }
    const rawInput = args.input ?? {};
    if (Buffer.byteLength(JSON.stringify(rawInput)) > MAX_INPUT_BYTES) {
      throw new InvalidInputError('input', `larger than ${MAX_INPUT_BYTES} bytes`);
    }
    const parsed = this.kinds.parseInput(kind, rawInput);
    if (!parsed.ok) {
      const [first] = parsed.problems;
      throw new InvalidInputError(first?.path ?? 'input', first?.message ?? 'invalid', {
        problems: parsed.problems,
      });
    }
    const task = newTask({
      userId,
      kind: kind.name,
      input: parsed.value,
      external: kind.external,
      idempotencyKey: args.idempotencyKey ?? null,
    });
    const { task: stored, created } = await this.#backend.tasks.create(task);
    if (!created) {
      if (stored.kind !== task.kind || JSON.stringify(stored.input) !== JSON.stringify(task.input)) {
        throw new ConflictError(
          `idempotencyKey ${JSON.stringify(args.idempotencyKey)} was already used for task ${stored.id} with another kind or input`,
          { taskId: stored.id },
        );
      }
      return stored;
    }
    this.#logger.debug('task started', { taskId: stored.id, userId, kind: kind.name, by: viewer.userId });
    if (!kind.external) await this.#backend.queue.enqueue(stored);
    return stored;
  }

  /** The task, or `null` when there is none; {@link ForbiddenError} when it is another user's. */
  async get(viewer: Viewer, id: string): Promise<Task | null> {
    assertId('id', id);
    const task = await this.#backend.tasks.get(id);
    if (task) assertCanActFor(viewer, task.userId);
    return task;
  }

  async list(
    viewer: Viewer,
    { userId, status, first = DEFAULT_PAGE_SIZE, after }: ListTasksArgs,
  ): Promise<TaskPage> {
    const owner = userId ?? (viewer.isService ? undefined : viewer.userId);
    if (owner !== undefined) assertCanActFor(viewer, owner);
    if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
      throw new InvalidInputError('first', `must be from 0 to ${MAX_PAGE_SIZE}`);
    }
    try {
      return await this.#backend.tasks.list({ userId: owner, statuses: status, first, after });
    } catch (error) {
      if (error instanceof InvalidCursorError) throw new InvalidInputError('after', error.message);
      throw error;
    }
  }

  /** Cursor of the newest event in the user's log (see `Viewer.lastEventCursor`). */
  lastEventCursor(userId: string): Promise<string> {
    return this.#backend.tasks.lastCursor(userId);
  }

  async cancel(viewer: Viewer, id: string): Promise<Task> {
    const task = await this.#require(viewer, id);
    const event = await this.#backend.tasks.transition(
      id,
      transitions.cancel({ code: 'CANCELLED', message: `cancelled by ${viewer.userId}` }, Date.now()),
    );
    if (!event) throw this.#finished(task.id, (await this.#backend.tasks.get(id)) ?? task, 'cancel');
    await this.#backend.queue.cancel(id);
    return event.task;
  }

  async reportProgress(viewer: Viewer, id: string, progress: number): Promise<Task> {
    assertService(viewer, 'reportTaskProgress');
    if (!Number.isFinite(progress) || progress < 0 || progress > 1) {
      throw new InvalidInputError('progress', 'must be from 0 to 1');
    }
    const task = await this.#requireExternal(viewer, id, 'reportTaskProgress');
    const event = await this.#backend.tasks.transition(
      id,
      transitions.externalProgress(progress, Date.now()),
    );
    if (event) return event.task;
    const current = (await this.#backend.tasks.get(id)) ?? task;
    if (isFinal(current.status)) throw this.#finished(id, current, 'report progress on');
    return current;
  }

  async complete(viewer: Viewer, id: string, result: Json | undefined): Promise<Task> {
    assertService(viewer, 'completeTask');
    return this.#finishExternal(viewer, id, { result: result ?? null }, 'completeTask');
  }

  async fail(viewer: Viewer, id: string, message: string, code: string | undefined): Promise<Task> {
    assertService(viewer, 'failTask');
    if (message.length === 0) throw new InvalidInputError('message', 'must not be empty');
    if (code !== undefined && !/^[A-Z][A-Z0-9_]{0,63}$/.test(code)) {
      throw new InvalidInputError('code', 'must be UPPER_SNAKE_CASE, at most 64 characters');
    }
    return this.#finishExternal(viewer, id, { error: { code: code ?? 'FAILED', message } }, 'failTask');
  }

  async #finishExternal(
    viewer: Viewer,
    id: string,
    outcome: Parameters<typeof transitions.externalFinish>[0],
    field: string,
  ): Promise<Task> {
    const task = await this.#requireExternal(viewer, id, field);
    const event = await this.#backend.tasks.transition(id, transitions.externalFinish(outcome, Date.now()));
    if (!event) throw this.#finished(id, (await this.#backend.tasks.get(id)) ?? task, 'finish');
    return event.task;
  }

  async #require(viewer: Viewer, id: string): Promise<Task> {
    const task = await this.get(viewer, id);
    if (!task) throw new NotFoundError(id);
    return task;
  }

  async #requireExternal(viewer: Viewer, id: string, field: string): Promise<Task> {
    const task = await this.#require(viewer, id);
    if (!task.external) {
      throw new InvalidInputError(
        'id',
        `${field} applies to external kinds only; task ${id} is of kind ${task.kind}, run by the service`,
      );
    }
    return task;
  }

  #finished(id: string, task: Task, action: string): ConflictError {
    return new ConflictError(`cannot ${action} task ${id}: it is already ${task.status}`, {
      status: task.status,
    });
  }
}
