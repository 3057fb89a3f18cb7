import { GraphQLError } from 'graphql';
import type { Logger } from '../logger.js';
import {
  ConflictError,
  CursorExpiredError,
  ForbiddenError,
  InvalidCursorError,
  InvalidInputError,
  NotFoundError,
  RateLimitedError,
  TaskServiceError,
  UnauthenticatedError,
  UnavailableError,
} from '../tasks/errors.js';

/** `extensions.code` of every error a client can receive. */
export const ErrorCode = {
  Unauthenticated: 'UNAUTHENTICATED',
  Forbidden: 'FORBIDDEN',
  BadUserInput: 'BAD_USER_INPUT',
  NotFound: 'NOT_FOUND',
  Conflict: 'CONFLICT',
  RateLimited: 'RATE_LIMITED',
  /** A per-connection limit (e.g. `MAX_SUBSCRIPTIONS_PER_CONNECTION`); retrying on that connection will not help until something ends. */
  LimitExceeded: 'LIMIT_EXCEEDED',
  CursorExpired: 'CURSOR_EXPIRED',
  /** The store or the queue cannot serve now (a full disk, Redis past its deadline); retry after `retryAfter` s. */
  ServiceUnavailable: 'SERVICE_UNAVAILABLE',
  /** A request that cannot be parsed, or names neither a document nor a trusted document's hash. */
  BadRequest: 'BAD_REQUEST',
  /** `extensions.persistedQuery.sha256Hash` names no trusted document of this server. */
  PersistedQueryNotFound: 'PERSISTED_QUERY_NOT_FOUND',
  /** `PERSISTED_OPERATIONS_ONLY` is on and the request sent a document's text. */
  PersistedQueryOnly: 'PERSISTED_QUERY_ONLY',
  /** A masked internal failure: its message says nothing more than "Unexpected error.". */
  InternalServerError: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** yoga's message for a masked error. */
const UNEXPECTED_ERROR = 'Unexpected error.';

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = {
  UNAUTHENTICATED: 401,
  RATE_LIMITED: 429,
  SERVICE_UNAVAILABLE: 503,
};

/** The transport's half of "authentication required", which the domain cannot know. */
const HOW_TO_AUTHENTICATE =
  'send "Authorization: Bearer <token>" (graphql-ws: connectionParams.authorization)';

/**
 * An error born at the edge (a token refused, a per-connection limit): its message is shown as is,
 * `extensions.code` says what kind it is and, for UNAUTHENTICATED, RATE_LIMITED and SERVICE_UNAVAILABLE,
 * `extensions.http` gives yoga the HTTP status.
 */
export function clientError(
  code: ErrorCode,
  message: string,
  extensions: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: codeExtensions(code, extensions) });
}

/** `code`, then `extensions`, then the code's HTTP status if it has one. */
function codeExtensions(code: ErrorCode, extensions: Record<string, unknown>): Record<string, unknown> {
  const status = HTTP_STATUS[code];
  return { code, ...extensions, ...(status ? { http: { status } } : {}) };
}

interface ClientShape {
  readonly message: string;
  readonly extensions: Record<string, unknown>;
}

function shape(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}): ClientShape {
  return { message, extensions: codeExtensions(code, extensions) };
}

/** Each domain error class as the client sees it; `null` for one no client may see. */
function describe(error: TaskServiceError): ClientShape | null {
  if (error instanceof UnauthenticatedError) {
    return shape(ErrorCode.Unauthenticated, `${error.message}: ${HOW_TO_AUTHENTICATE}`);
  }
  if (error instanceof ForbiddenError) return shape(ErrorCode.Forbidden, error.message);
  if (error instanceof NotFoundError) return shape(ErrorCode.NotFound, error.message, { id: error.id });
  if (error instanceof ConflictError) {
    return shape(ErrorCode.Conflict, error.message, {
      ...(error.taskId !== undefined ? { taskId: error.taskId } : {}),
      ...(error.status !== undefined ? { status: error.status } : {}),
    });
  }
  if (error instanceof RateLimitedError) {
    return retryLater(ErrorCode.RateLimited, 429, error.message, error.retryAfterMs, { limit: error.limit });
  }
  if (error instanceof UnavailableError) {
    return retryLater(ErrorCode.ServiceUnavailable, 503, error.message, error.retryAfterMs, {
      part: error.part,
    });
  }
  if (error instanceof InvalidInputError) {
    return shape(ErrorCode.BadUserInput, error.message, {
      field: error.field,
      ...(error.knownKinds !== undefined ? { knownKinds: error.knownKinds } : {}),
      ...(error.problems !== undefined ? { problems: error.problems } : {}),
    });
  }
  if (error instanceof CursorExpiredError) {
    return shape(
      ErrorCode.CursorExpired,
      `${error.message}; reconcile with the tasks query and subscribe again without "after"`,
      { cursor: error.cursor },
    );
  }
  if (error instanceof InvalidCursorError) return shape(ErrorCode.BadUserInput, error.message);
  return null;
}

/** An error a retry may cure: `retryAfter` in whole seconds (at least one), also as `Retry-After`. */
function retryLater(
  code: ErrorCode,
  status: number,
  message: string,
  retryAfterMs: number,
  extensions: Record<string, unknown>,
): ClientShape {
  const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return {
    message,
    extensions: {
      code,
      retryAfter,
      ...extensions,
      http: { status, headers: { 'retry-after': String(retryAfter) } },
    },
  };
}

/**
 * A domain error as a client error: its `extensions.code`, its fields as extensions and, where one
 * applies, `extensions.http` (401 for UNAUTHENTICATED; 429 or 503 and `Retry-After` for RATE_LIMITED and SERVICE_UNAVAILABLE).
 * Accepts the domain error itself or the `GraphQLError` graphql-js wrapped it in, whose
 * `path` and `locations` the result keeps. `null` for anything else.
 */
export function toClientError(error: unknown): GraphQLError | null {
  const located = error instanceof GraphQLError ? error : undefined;
  const domain = located ? located.originalError : error;
  const described = domain instanceof TaskServiceError ? describe(domain) : null;
  if (!described) return null;
  return new GraphQLError(described.message, {
    nodes: located?.nodes ?? null,
    source: located?.source ?? null,
    positions: located?.positions ?? null,
    path: located?.path ?? null,
    extensions: described.extensions,
  });
}

/**
 * One input's error in a bulk operation (`startTasks`), as its own result rather than a GraphQL
 * error: the `extensions.code` and message the same input would have carried alone, and of the
 * extensions the ones a caller acts on.
 */
export interface ItemError {
  readonly code: ErrorCode;
  readonly message: string;
  /** The argument to fix, for BAD_USER_INPUT. */
  readonly field?: string;
  /** The task that already holds what was asked for, for CONFLICT. */
  readonly taskId?: string;
  /** Seconds until a retry can succeed, for RATE_LIMITED and SERVICE_UNAVAILABLE. */
  readonly retryAfter?: number;
}

/**
 * A domain error as one item's error of a bulk operation, from the same description as
 * {@link toClientError}; `null` for an error no client may see.
 */
export function toItemError(error: TaskServiceError): ItemError | null {
  const described = describe(error);
  if (!described) return null;
  const { code, field, taskId, retryAfter } = described.extensions;
  return {
    code: code as ErrorCode,
    message: described.message,
    ...(typeof field === 'string' ? { field } : {}),
    ...(typeof taskId === 'string' ? { taskId } : {}),
    ...(typeof retryAfter === 'number' ? { retryAfter } : {}),
  };
}

/**
 * yoga's `maskError`, and the one for pushed subscriptions: a client error passes as it is, a
 * domain error becomes its client error ({@link toClientError}), anything else is logged and
 * becomes "Unexpected error." with code INTERNAL_SERVER_ERROR.
 */
export function createMaskError(logger: Logger): (error: unknown, message?: string) => GraphQLError {
  return (error, message = UNEXPECTED_ERROR) => {
    const mapped = toClientError(error);
    if (mapped) return mapped;
    if (error instanceof GraphQLError && (error.originalError ?? error) instanceof GraphQLError) return error;
    const original = error instanceof GraphQLError ? error.originalError : error;
    logger.error('internal error', { err: original });
    return new GraphQLError(message, { extensions: { code: ErrorCode.InternalServerError } });
  };
}
