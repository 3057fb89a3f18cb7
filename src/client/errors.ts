import type { CombinedError } from '@urql/core';

/** A GraphQL error as the server formats it. */
export interface ServerError {
  readonly message: string;
  readonly extensions?: Readonly<Record<string, unknown>>;
}

/**
 * What the SDK's promises reject with: the server's error (`code` is its `extensions.code`, e.g.
 * `CONFLICT`, `FORBIDDEN`, `BAD_USER_INPUT`) or a network failure (`code` null).
 */
export class TaskClientError extends Error {
  override readonly name = 'TaskClientError';
  readonly code: string | null;
  readonly errors: readonly ServerError[];

  constructor(message: string, code: string | null, errors: readonly ServerError[] = [], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.errors = errors;
  }

  static from(error: CombinedError): TaskClientError {
    const errors: ServerError[] = error.graphQLErrors.map((e) => ({
      message: e.message,
      extensions: e.extensions,
    }));
    const first = errors[0];
    if (first) return new TaskClientError(first.message, errorCode(first), errors, error);
    return new TaskClientError(
      error.networkError?.message ?? error.message,
      null,
      [],
      error.networkError ?? error,
    );
  }
}

export function errorCode(error: ServerError | undefined): string | null {
  const code = error?.extensions?.['code'];
  return typeof code === 'string' ? code : null;
}
