import type { Viewer } from '../auth/viewer.js';
import type { Logger } from '../logger.js';
import {
  ConflictError,
  ForbiddenError,
  InvalidCursorError,
  InvalidInputError,
  NotFoundError,
  UnauthenticatedError,
} from './errors.js';
import type { KindRegistry } from './kind-registry.js';
import type { Backend, TaskPage } from './ports.js';
import { isFinal, type Json, type Task, type TaskStatus } from './task.js';
import {
  MAX_START_BATCH,
  type StartLimit,
  type StartOutcome,
  type StartTaskArgs,
  TaskStarter,
} from './task-starter.js';
import * as transitions from './transitions.js';
import { assertId, assertUserId } from './user-id.js';

export { MAX_START_BATCH, type StartOutcome, type StartTaskArgs };

export interface ListTasksArgs {
  readonly userId?: string | undefined;
  readonly status?: readonly TaskStatus[] | undefined;
  readonly first?: number | undefined;
  readonly after?: string | undefined;
}

export interface TaskServiceOptions {
  /** Rate of `startTask` per user (each input of `startMany` counts). Unset: unlimited. */
  readonly startLimit?: StartLimit;
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/** Throws {@link UnauthenticatedError} unless there is a verified caller. */
export function requireViewer(viewer: Viewer | null): Viewer {
  if (!viewer) throw new UnauthenticatedError();
  return viewer;
}

/**
 * Throws {@link ForbiddenError} unless the caller is `userId` or a service. For a user the caller
 * names; the message names nobody, so an error shown or logged elsewhere gives no user id away.
 */
export function assertCanActFor(viewer: Viewer, userId: string): void {
  if (!mayActFor(viewer, userId)) {
    throw new ForbiddenError("only a service caller may access another user's tasks");
  }
}

function mayActFor(viewer: Viewer, userId: string): boolean {
  return viewer.userId === userId || viewer.isService;
}

/**
 * The task if the caller may see it, else `null`: another user's task looks exactly like one that
 * does not exist, so task ids cannot be probed (OWASP: answer 404, not 403, for objects the
 * caller may not know about).
 */
export function visibleTo(viewer: Viewer, task: Task | null): Task | null {
  return task && mayActFor(viewer, task.userId) ? task : null;
}

function assertService(viewer: Viewer, what: string): void {
  if (!viewer.isService) throw new ForbiddenError(`${what} needs the service role`);
}

/**
 * The domain operations behind the GraphQL fields, with authorization: a user acts on their own
 * tasks, a service caller on anyone's.
 */
export class TaskService {
  readonly #backend: Backend;
  readonly #starter: TaskStarter;
  readonly kinds: KindRegistry;

  constructor(backend: Backend, kinds: KindRegistry, logger: Logger, options: TaskServiceOptions = {}) {
    this.#backend = backend;
    this.kinds = kinds;
    this.#starter = new TaskStarter(backend, kinds, logger, options.startLimit);
  }

  /**
   * Starts a task, or returns the one an earlier call with the same user and `idempotencyKey`
   * started (the rules are {@link TaskStarter}'s); throws the domain error that refuses it.
   */
  async start(viewer: Viewer, args: StartTaskArgs): Promise<Task> {
    const [outcome] = await this.#starter.startMany(viewer, [args]);
    if (!outcome) throw new Error('startMany answered no outcome for one input');
    if (!outcome.ok) throw outcome.error;
    return outcome.task;
  }

  /**
   * Starts up to {@link MAX_START_BATCH} tasks in one batch: one outcome per input, in order, each
   * its task or the domain error that refused it (see {@link TaskStarter.startMany}).
   */
  startMany(viewer: Viewer, inputs: readonly StartTaskArgs[]): Promise<StartOutcome[]> {
    return this.#starter.startMany(viewer, inputs);
  }

  /** The task, or `null` when there is none or it is another user's (see {@link visibleTo}). */
  async get(viewer: Viewer, id: string): Promise<Task | null> {
    assertId('id', id);
    return visibleTo(viewer, await this.#backend.tasks.get(id));
  }

  async list(
    viewer: Viewer,
    { userId, status, first = DEFAULT_PAGE_SIZE, after }: ListTasksArgs,
  ): Promise<TaskPage> {
    if (userId !== undefined) assertUserId(userId);
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

  /** The task, or {@link NotFoundError} alike for none and for another user's. */
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
