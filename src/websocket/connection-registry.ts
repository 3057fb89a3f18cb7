/** Anything the registry can close: a WebSocket, seen through the one call it needs. */
export interface ClosableConnection {
  close(code: number, reason: string): void;
}

/**
 * The open WebSocket connections of each user on this gateway: enforces
 * `MAX_CONNECTIONS_PER_USER` and finds a user's connections to revoke them.
 */
export class ConnectionRegistry {
  readonly #byUser = new Map<string, Set<ClosableConnection>>();
  readonly #maxPerUser: number;

  /** @param maxPerUser 0: unlimited */
  constructor(maxPerUser: number) {
    this.#maxPerUser = maxPerUser;
  }

  /** Registers `connection` for `userId`; false (and nothing registered) when the user is at the limit. */
  tryAdd(userId: string, connection: ClosableConnection): boolean {
    const set = this.#byUser.get(userId) ?? new Set();
    if (this.#maxPerUser > 0 && set.size >= this.#maxPerUser) return false;
    set.add(connection);
    this.#byUser.set(userId, set);
    return true;
  }

  remove(userId: string, connection: ClosableConnection): void {
    const set = this.#byUser.get(userId);
    if (!set) return;
    set.delete(connection);
    if (set.size === 0) this.#byUser.delete(userId);
  }

  /** Closes and forgets every connection of `userId`; returns how many there were. */
  closeUser(userId: string, code: number, reason: string): number {
    const set = this.#byUser.get(userId);
    if (!set) return 0;
    this.#byUser.delete(userId);
    for (const connection of set) connection.close(code, reason);
    return set.size;
  }
}
