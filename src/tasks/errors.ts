import type { InputProblem } from './kind-registry.js';
import type { TaskStatus } from './task.js';

/**
 * What the domain throws when a caller asks for something it may not have or that cannot be:
 * the message says why, the fields carry what a client needs to act on it. No transport here —
 * the edge (`src/graphql/error-mapper.ts`) turns each class into a client error with its code.
 * Anything thrown that is not a `TaskServiceError` is an internal failure.
 */
export abstract class TaskServiceError extends Error {
  override readonly name: string = 'TaskServiceError';
}

/** No verified caller. */
export class UnauthenticatedError extends TaskServiceError {
  override readonly name = 'UnauthenticatedError';

  constructor(message = 'Authentication required') {
    super(message);
  }
}

/** The caller is known but may not do this (another user's task, a service-only operation). */
export class ForbiddenError extends TaskServiceError {
  override readonly name = 'ForbiddenError';
}

/** No task with this id. */
export class NotFoundError extends TaskServiceError {
  override readonly name = 'NotFoundError';

  constructor(readonly id: string) {
    super(`no task with id ${JSON.stringify(id)}`);
  }
}

/** What a {@link ConflictError} points at. */
export interface ConflictDetails {
  /** The task that already holds what was asked for (e.g. a reused idempotency key). */
  readonly taskId?: string;
  /** The status that makes the request impossible (e.g. cancelling a finished task). */
  readonly status?: TaskStatus;
}

/** The request contradicts the task's current state. */
export class ConflictError extends TaskServiceError {
  override readonly name = 'ConflictError';
  readonly taskId: string | undefined;
  readonly status: TaskStatus | undefined;

  constructor(message: string, { taskId, status }: ConflictDetails = {}) {
    super(message);
    this.taskId = taskId;
    this.status = status;
  }
}

/** The caller exceeded a rate; it may retry after `retryAfterMs`. */
export class RateLimitedError extends TaskServiceError {
  override readonly name = 'RateLimitedError';

  constructor(
    message: string,
    /** How long until a retry can succeed. */
    readonly retryAfterMs: number,
    /** Which limit refused, e.g. `startTask`. */
    readonly limit: string,
  ) {
    super(message);
  }
}

/** What else an {@link InvalidInputError} tells the caller. */
export interface InvalidInputDetails {
  /** The kinds there are, when the one asked for is not among them. */
  readonly knownKinds?: readonly string[];
  /** Every problem the kind's input schema found, when `field` is only the first. */
  readonly problems?: readonly InputProblem[];
}

/** An argument the caller can fix: `field` names it; the message is `<field>: <reason>`. */
export class InvalidInputError extends TaskServiceError {
  override readonly name = 'InvalidInputError';
  readonly knownKinds: readonly string[] | undefined;
  readonly problems: readonly InputProblem[] | undefined;

  constructor(
    readonly field: string,
    reason: string,
    { knownKinds, problems }: InvalidInputDetails = {},
  ) {
    super(`${field}: ${reason}`);
    this.knownKinds = knownKinds;
    this.problems = problems;
  }
}

/**
 * The cursor is older than the retained event log (or from another log); reconcile with `tasks`.
 * `cursor` is the one the subscriber last held, when known.
 */
export class CursorExpiredError extends TaskServiceError {
  override readonly name = 'CursorExpiredError';
  readonly cursor: string | null;

  constructor(message: string, { cursor = null }: { readonly cursor?: string | null } = {}) {
    super(message);
    this.cursor = cursor;
  }
}

/** A cursor string that this log did not issue. */
export class InvalidCursorError extends TaskServiceError {
  override readonly name = 'InvalidCursorError';
}

/** Which part of the backend an {@link UnavailableError} is about. */
export type UnavailablePart = 'store' | 'queue';

/**
 * The backend cannot do this now (the disk is full, Redis does not answer within its deadline):
 * nothing was done that the caller cannot find again, and a retry after `retryAfterMs` may succeed.
 */
export class UnavailableError extends TaskServiceError {
  override readonly name = 'UnavailableError';

  constructor(
    message: string,
    /** What failed. */
    readonly part: UnavailablePart,
    /** How long until a retry may succeed. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}
