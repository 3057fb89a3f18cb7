import { GraphQLError } from 'graphql';

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
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401, RATE_LIMITED: 429 };

/**
 * An error meant for the client: its message is shown as is and `extensions.code` says what kind it is.
 * Anything else thrown while resolving is masked as an internal error.
 */
export function clientError(code: ErrorCode, message: string, extensions: Record<string, unknown> = {}) {
  const status = HTTP_STATUS[code];
  return new GraphQLError(message, {
    extensions: { code, ...extensions, ...(status ? { http: { status } } : {}) },
  });
}

/**
 * RATE_LIMITED, with `retryAfter` (whole seconds) in the extensions and, over HTTP, status 429
 * and a `Retry-After` header.
 */
export function rateLimitedError(
  message: string,
  retryAfterMs: number,
  extensions: Record<string, unknown> = {},
) {
  const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new GraphQLError(message, {
    extensions: {
      code: ErrorCode.RateLimited,
      retryAfter,
      ...extensions,
      http: { status: 429, headers: { 'retry-after': String(retryAfter) } },
    },
  });
}

/** The cursor is older than the retained event log (or from another log); reconcile with `tasks`. */
export class CursorExpiredError extends Error {
  override readonly name = 'CursorExpiredError';
}

/** A cursor string that this log did not issue. */
export class InvalidCursorError extends Error {
  override readonly name = 'InvalidCursorError';
}
