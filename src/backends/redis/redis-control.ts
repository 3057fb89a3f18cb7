import type { Logger } from '../../logger.js';
import type { ControlChannel, ControlMessage } from '../../tasks/ports.js';
import type { RedisKeys } from './keys.js';
import type { RedisChannels } from './redis-channels.js';

function isControlMessage(value: unknown): value is ControlMessage {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as Record<string, unknown>;
  return (
    message['type'] === 'revoke-user-connections' &&
    typeof message['userId'] === 'string' &&
    typeof message['origin'] === 'string'
  );
}

/**
 * The control channel over Redis pub/sub: one channel that every gateway of the deployment hears.
 * Messages travel as JSON, as they did when graphql-redis-subscriptions carried them, so gateways
 * of both versions understand each other.
 */
export class RedisControl implements ControlChannel {
  readonly #channels: RedisChannels;
  readonly #channel: string;
  readonly #logger: Logger;

  constructor(channels: RedisChannels, keys: RedisKeys, logger: Logger) {
    this.#channels = channels;
    this.#channel = keys.control();
    this.#logger = logger;
  }

  async publish(message: ControlMessage): Promise<void> {
    await this.#channels.publish(this.#channel, JSON.stringify(message));
  }

  async subscribe(listener: (message: ControlMessage) => void): Promise<() => void> {
    return this.#channels.subscribe(this.#channel, (raw) => {
      let message: unknown;
      try {
        message = JSON.parse(raw);
      } catch {
        this.#logger.warn('dropped a control message that is not JSON', { length: raw.length });
        return;
      }
      // A message type this version does not know (a newer gateway's) is ignored.
      if (isControlMessage(message)) listener(message);
    });
  }
}
