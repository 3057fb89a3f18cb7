import { InvalidInputError } from './errors.js';

/** Longest id the service takes: task ids, idempotency keys, user ids. */
export const MAX_ID_LENGTH = 200;

/** @default 200, as for every other id the service takes. */
export const MAX_USER_ID_LENGTH = MAX_ID_LENGTH;

/** Throws {@link InvalidInputError} on `field` (BAD_USER_INPUT) unless `value` is 1 to {@link MAX_ID_LENGTH} characters. */
export function assertId(field: string, value: string): void {
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new InvalidInputError(field, `must be 1 to ${MAX_ID_LENGTH} characters`);
  }
}

/**
 * What a user id may not hold: control characters, invisible format characters (bidi overrides,
 * zero-width joiners: ids that look alike but differ), lone surrogates (not text) and whitespace.
 * Everything the identity providers put in `sub` passes: Auth0's `auth0|5f7c…` and
 * `google-oauth2|1043…`, e-mail addresses (`a.b+tag@example.com`), UUIDs (Cognito, Keycloak,
 * Entra ID), Okta's `00u1ab…`, Firebase's 28-character ids, SPIFFE ids (`spiffe://domain/ns/x`),
 * numeric ids, and ids in other scripts.
 */
const NOT_IN_USER_ID = /[\p{Cc}\p{Cf}\p{Cs}\p{Z}\s]/u;

/**
 * Why `userId` is not a user id the service accepts (1–{@link MAX_USER_ID_LENGTH} characters, none
 * of them control, format or whitespace characters, no lone surrogate), or `null` when it is one.
 * For the token verifier, which refuses a `sub` that fails it.
 */
export function userIdProblem(userId: string): string | null {
  if (userId.length === 0 || userId.length > MAX_USER_ID_LENGTH) {
    return `must be 1 to ${MAX_USER_ID_LENGTH} characters`;
  }
  if (NOT_IN_USER_ID.test(userId)) {
    return 'must not contain whitespace, control or invisible formatting characters';
  }
  return null;
}

/** Throws {@link InvalidInputError} on `field` (BAD_USER_INPUT) unless `userId` passes {@link userIdProblem}. */
export function assertUserId(userId: string, field = 'userId'): void {
  const problem = userIdProblem(userId);
  if (problem !== null) throw new InvalidInputError(field, problem);
}
