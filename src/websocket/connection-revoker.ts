import { randomUUID } from 'node:crypto';
import type { RevocationList } from '../auth/revocation-list.js';
import type { Logger } from '../logger.js';
import type { ControlChannel, ControlMessage } from '../tasks/ports.js';

/** Open connections of users on this gateway that a revocation ends (WebSockets, SSE streams). */
export interface RevocationTarget {
  /** Ends what `userId` holds on a token issued before `revokedBefore`; returns how many. */
  revoke(userId: string, revokedBefore: number): number;
  /** Users with something open here. */
  users(): Iterable<string>;
}

export interface ConnectionRevokerOptions {
  /** The WebSocket registry and the SSE subscriptions. */
  readonly targets: readonly RevocationTarget[];
  readonly revocations: RevocationList;
  readonly control: ControlChannel;
  readonly logger: Logger;
  /** Told how many connections this gateway ended, whoever asked. */
  readonly onRevoked?: (count: number) => void;
  /**
   * How long {@link ConnectionRevoker.revoke} waits for the other gateways to say how many
   * connections they ended. It stops waiting sooner once every gateway the broadcast reached has
   * answered (a single Redis counts them; a Redis Cluster cannot, so there it waits this long).
   * @default 2000
   */
  readonly answerTimeoutMs?: number;
}

/** The answers to one revocation, as they arrive. */
class Answers {
  closed = 0;
  #count = 0;
  #expected: number | null = null;
  #settle: (() => void) | undefined;

  add(closed: number): void {
    this.closed += closed;
    this.#count++;
    this.#check();
  }

  /** Resolves once `expected` answers are in (`null`: unknown), or after `timeoutMs`. */
  async wait(expected: number | null, timeoutMs: number): Promise<void> {
    this.#expected = expected;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.#settle = resolve;
      timer = setTimeout(resolve, timeoutMs);
      this.#check();
    });
    clearTimeout(timer);
  }

  #check(): void {
    if (this.#expected !== null && this.#count >= this.#expected) this.#settle?.();
  }
}

/**
 * Revokes a user's tokens and connections on every gateway, the way Centrifugo does: the user's
 * revoked-before timestamp goes into the store (every later authentication with a token issued
 * before it is refused: HTTP, SSE, graphql-ws connect, per-operation tokens), this gateway ends
 * what the user holds on such a token (WebSockets closed with 4403, SSE streams ended with
 * UNAUTHENTICATED), and a broadcast on the control channel makes every other gateway do the same
 * and answer how many it ended. A gateway whose control connection was down meanwhile catches up
 * when it is back: it re-reads the timestamps of every user with something open there.
 */
export class ConnectionRevoker {
  /** Tells this gateway's own broadcasts apart from the others'. */
  readonly gatewayId = randomUUID();
  readonly #options: ConnectionRevokerOptions;
  readonly #answerTimeoutMs: number;
  readonly #pending = new Map<string, Answers>();
  #stopListening: (() => void) | undefined;

  constructor(options: ConnectionRevokerOptions) {
    this.#options = options;
    this.#answerTimeoutMs = options.answerTimeoutMs ?? 2_000;
  }

  /** Starts hearing the other gateways' revocations. */
  async start(): Promise<void> {
    this.#stopListening ??= await this.#options.control.subscribe(
      (message) => this.#hear(message),
      () => void this.#catchUp(),
    );
  }

  stop(): void {
    this.#stopListening?.();
    this.#stopListening = undefined;
  }

  /**
   * Revokes the user's tokens issued before now and ends what they hold open, everywhere. Resolves
   * with how many connections (WebSockets and SSE streams) were ended on this gateway and on every
   * other gateway that answered within `answerTimeoutMs`; a gateway answering later (or catching up
   * after a reconnect) still ends its own.
   */
  async revoke(userId: string): Promise<number> {
    const { revocations, control, logger } = this.#options;
    const revokedBefore = await revocations.revoke(userId, Date.now());
    const closedHere = this.#closeHere(userId, revokedBefore);
    const requestId = randomUUID();
    const answers = new Answers();
    this.#pending.set(requestId, answers);
    try {
      const reached = await control.publish({
        type: 'revoke-user-connections',
        userId,
        revokedBefore,
        requestId,
        origin: this.gatewayId,
      });
      const others = reached === null ? null : Math.max(0, reached - (this.#stopListening ? 1 : 0));
      await answers.wait(others, this.#answerTimeoutMs);
    } finally {
      this.#pending.delete(requestId);
    }
    const closed = closedHere + answers.closed;
    logger.info('connections revoked', { userId, closedHere, closed });
    return closed;
  }

  #hear(message: ControlMessage): void {
    if (message.origin === this.gatewayId) return;
    if (message.type === 'user-connections-revoked') {
      this.#pending.get(message.requestId)?.add(message.closed);
      return;
    }
    const { userId, requestId } = message;
    // A gateway of an earlier version says no timestamp: everything of the user ends.
    const revokedBefore = message.revokedBefore ?? Number.POSITIVE_INFINITY;
    this.#options.revocations.learn(userId, revokedBefore);
    const closed = this.#closeHere(userId, revokedBefore);
    if (closed > 0) this.#options.logger.info('connections revoked by another gateway', { userId, closed });
    if (requestId === undefined) return;
    this.#options.control
      .publish({ type: 'user-connections-revoked', requestId, closed, origin: this.gatewayId })
      .catch((err: unknown) => this.#options.logger.warn('could not answer a revocation', { userId, err }));
  }

  /** The control channel may have missed revocations: check what is open here against the store. */
  async #catchUp(): Promise<void> {
    const { revocations, targets, logger } = this.#options;
    revocations.forget();
    const users = new Set<string>();
    for (const target of targets) for (const userId of target.users()) users.add(userId);
    try {
      const closed = await Promise.all(
        [...users].map(async (userId) => this.#closeHere(userId, await revocations.revokedBefore(userId))),
      );
      logger.warn('control channel reconnected: open connections checked against stored revocations', {
        users: users.size,
        closed: closed.reduce((sum, count) => sum + count, 0),
      });
    } catch (err) {
      logger.error('could not check open connections against stored revocations', { err });
    }
  }

  #closeHere(userId: string, revokedBefore: number): number {
    let closed = 0;
    for (const target of this.#options.targets) closed += target.revoke(userId, revokedBefore);
    if (closed > 0) this.#options.onRevoked?.(closed);
    return closed;
  }
}
