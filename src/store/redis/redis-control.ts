import type { RedisPubSub } from 'graphql-redis-subscriptions';
import type { ControlChannel, ControlMessage } from '../ports.js';
import type { RedisKeys } from './keys.js';

function isControlMessage(value: unknown): value is ControlMessage {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as Record<string, unknown>;
  return (
    message['type'] === 'revoke-user-connections' &&
    typeof message['userId'] === 'string' &&
    typeof message['origin'] === 'string'
  );
}

/** The control channel over Redis pub/sub: one channel that every gateway of the deployment hears. */
export class RedisControl implements ControlChannel {
  readonly #pubsub: RedisPubSub;
  readonly #channel: string;

  constructor(pubsub: RedisPubSub, keys: RedisKeys) {
    this.#pubsub = pubsub;
    this.#channel = keys.control();
  }

  async publish(message: ControlMessage): Promise<void> {
    await this.#pubsub.publish(this.#channel, message);
  }

  async subscribe(listener: (message: ControlMessage) => void): Promise<() => void> {
    const id = await this.#pubsub.subscribe(this.#channel, (message: unknown) => {
      if (isControlMessage(message)) listener(message);
    });
    return () => this.#pubsub.unsubscribe(id);
  }
}
