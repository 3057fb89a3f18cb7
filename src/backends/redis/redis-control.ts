import type { ControlChannel, ControlMessage } from '../../tasks/ports.js';
import type { RedisKeys } from './keys.js';
import type { GuardedRedisPubSub } from './redis-pubsub.js';

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
 * Messages travel as JSON, as they always have, so gateways of different versions understand each
 * other.
 */
export class RedisControl implements ControlChannel {
  readonly #pubsub: GuardedRedisPubSub;
  readonly #channel: string;

  constructor(pubsub: GuardedRedisPubSub, keys: RedisKeys) {
    this.#pubsub = pubsub;
    this.#channel = keys.control();
  }

  publish(message: ControlMessage): Promise<void> {
    return this.#pubsub.publish(this.#channel, message);
  }

  subscribe(listener: (message: ControlMessage) => void): Promise<() => void> {
    return this.#pubsub.subscribe(this.#channel, (message) => {
      // A message type this version does not know (a newer gateway's) is ignored.
      if (isControlMessage(message)) listener(message);
    });
  }
}
