import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { ControlChannel } from '../tasks/ports.js';
import { CloseCode } from './close-codes.js';
import type { ConnectionRegistry } from './connection-registry.js';

export interface ConnectionRevokerOptions {
  readonly registry: ConnectionRegistry;
  readonly control: ControlChannel;
  readonly logger: Logger;
  /** Told how many connections this gateway closed, whoever asked. */
  readonly onRevoked?: (count: number) => void;
}

/**
 * Revokes a user's WebSocket connections on every gateway: closes this gateway's at once (4403),
 * then broadcasts on the control channel so that the other gateways close theirs.
 */
export class ConnectionRevoker {
  /** Tells this gateway's own broadcasts apart from the others'. */
  readonly gatewayId = randomUUID();
  readonly #options: ConnectionRevokerOptions;
  #stopListening: (() => void) | undefined;

  constructor(options: ConnectionRevokerOptions) {
    this.#options = options;
  }

  /** Starts hearing the other gateways' revocations. */
  async start(): Promise<void> {
    this.#stopListening ??= await this.#options.control.subscribe((message) => {
      if (message.type !== 'revoke-user-connections' || message.origin === this.gatewayId) return;
      const closed = this.#closeHere(message.userId);
      if (closed > 0) {
        this.#options.logger.info('connections revoked by another gateway', {
          userId: message.userId,
          closed,
        });
      }
    });
  }

  stop(): void {
    this.#stopListening?.();
    this.#stopListening = undefined;
  }

  /** Closes the user's connections everywhere; resolves with how many were open on this gateway. */
  async revoke(userId: string): Promise<number> {
    const closed = this.#closeHere(userId);
    this.#options.logger.info('connections revoked', { userId, closed });
    await this.#options.control.publish({ type: 'revoke-user-connections', userId, origin: this.gatewayId });
    return closed;
  }

  #closeHere(userId: string): number {
    const closed = this.#options.registry.closeUser(
      userId,
      CloseCode.Forbidden,
      'Forbidden: connections revoked',
    );
    if (closed > 0) this.#options.onRevoked?.(closed);
    return closed;
  }
}
