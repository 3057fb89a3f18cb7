/**
 * WebSocket close codes this server uses besides graphql-ws's own (4400 invalid message, 4408
 * init timeout, 4409 duplicate id, 4429 duplicate init, 4500 internal error).
 */
export const CloseCode = {
  /** Server shutting down or draining: reconnect (to another instance) and resume from the cursor. */
  GoingAway: 1001,
  /** The token was refused or has expired: get a fresh token, reconnect and resume. */
  Forbidden: 4403,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
