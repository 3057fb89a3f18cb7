import { issuedBefore } from '../auth/revocation-list.js';
import { CloseCode } from './close-codes.js';

/** Anything the registry can close: a WebSocket, seen through the one call it needs. */
export interface ClosableConnection {
  close(code: number, reason: string): void;
}

/** Older of two `iat`s; `null` (a token that does not say) is the oldest. */
function earlier(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : Math.min(a, b);
}

/**
 * The open WebSocket connections of each user on this gateway: enforces
 * `MAX_CONNECTIONS_PER_USER` and finds a user's connections to revoke them. A connection is the
 * user's when its connection token is, and also when one of its operations carried a token of
 * the user (a connection may so count for several users); with each, the issue time of the
 * oldest token of the user it used.
 */
export class ConnectionRegistry {
  readonly #byUser = new Map<string, Map<ClosableConnection, number | null>>();
  readonly #maxPerUser: number;

  /** @param maxPerUser 0: unlimited */
  constructor(maxPerUser: number) {
    this.#maxPerUser = maxPerUser;
  }

  /**
   * Registers `connection` for `userId`, holding a token of the user issued at `issuedAt` (epoch
   * ms; `null`: the token does not say). A connection already registered for the user stays so and
   * keeps the older issue time. False (and nothing registered) when the user is at the limit.
   */
  tryAdd(userId: string, connection: ClosableConnection, issuedAt: number | null): boolean {
    const connections = this.#byUser.get(userId) ?? new Map<ClosableConnection, number | null>();
    if (connections.has(connection)) {
      connections.set(connection, earlier(connections.get(connection) ?? null, issuedAt));
      return true;
    }
    if (this.#maxPerUser > 0 && connections.size >= this.#maxPerUser) return false;
    connections.set(connection, issuedAt);
    this.#byUser.set(userId, connections);
    return true;
  }

  remove(userId: string, connection: ClosableConnection): void {
    const connections = this.#byUser.get(userId);
    if (!connections) return;
    connections.delete(connection);
    if (connections.size === 0) this.#byUser.delete(userId);
  }

  /** Users with a connection here. */
  users(): Iterable<string> {
    return this.#byUser.keys();
  }

  /**
   * Closes with 4403 and forgets every connection of `userId` that holds a token of the user
   * issued before `revokedBefore` (see {@link issuedBefore}); returns how many.
   */
  revoke(userId: string, revokedBefore: number): number {
    const connections = this.#byUser.get(userId);
    if (!connections) return 0;
    const revoked: ClosableConnection[] = [];
    for (const [connection, issuedAt] of connections) {
      if (issuedBefore(issuedAt, revokedBefore)) revoked.push(connection);
    }
    for (const connection of revoked) connections.delete(connection);
    if (connections.size === 0) this.#byUser.delete(userId);
    for (const connection of revoked) connection.close(CloseCode.Forbidden, 'Forbidden: connections revoked');
    return revoked.length;
  }
}
