/**
 * WebSocket close codes this server uses besides graphql-ws's own (4400 invalid message, 4401
 * operation before `connection_ack`, 4406 wrong subprotocol, 4408 init timeout, 4409 duplicate
 * operation id, 4429 duplicate init, 4500 internal error) and the `ws` library's 1009 (message
 * larger than `MAX_BODY_BYTES`). Every code here but {@link CloseCode.TokenInUrl} is one the
 * graphql-ws client retries.
 */
export const CloseCode = {
  /** Server shutting down or draining: reconnect (to another instance) and resume from the cursor. */
  GoingAway: 1001,
  /**
   * The client read too slowly: more than `SLOW_CONSUMER_BYTES` waited to be sent. Reconnect and
   * resume from the last cursor received.
   */
  SlowConsumer: 4008,
  /** The token was refused, has expired, or the user's connections were revoked: get a fresh token. */
  Forbidden: 4403,
  /** The user already holds `MAX_CONNECTIONS_PER_USER` connections on this gateway. */
  TooManyConnections: 4420,
  /**
   * The upgrade URL carried a token (`?token=` or `?access_token=`, as the old notifier's client
   * sent it): refused, as a token in a URL ends up in logs and histories. graphql-ws's own
   * "bad request" code, which its client does not retry; the reason says where the token goes.
   */
  TokenInUrl: 4400,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
