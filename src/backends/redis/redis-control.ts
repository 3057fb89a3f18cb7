import type { Logger } from '../../logger.js';
import type { ControlChannel, ControlMessage } from '../../tasks/ports.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';
import type { GuardedRedisPubSub } from './redis-pubsub.js';

function isControlMessage(value: unknown): value is ControlMessage {
  if (typeof value !== 'object' || value === null) return false;
  const message = value as Record<string, unknown>;
  if (typeof message['origin'] !== 'string') return false;
  if (message['type'] === 'revoke-user-connections') {
    return (
      typeof message['userId'] === 'string' &&
      (message['revokedBefore'] === undefined || typeof message['revokedBefore'] === 'number') &&
      (message['requestId'] === undefined || typeof message['requestId'] === 'string')
    );
  }
  return (
    message['type'] === 'user-connections-revoked' &&
    typeof message['requestId'] === 'string' &&
    typeof message['closed'] === 'number'
  );
}

export interface RedisControlOptions {
  readonly pubsub: GuardedRedisPubSub;
  /** The connection PUBLISH goes through (its reply counts the listeners reached). */
  readonly publisher: RedisClient;
  readonly keys: RedisKeys;
  readonly logger: Logger;
}

/**
 * The control channel over Redis pub/sub: one channel that every gateway of the deployment hears.
 * Messages travel as JSON, as they always have, so gateways of different versions understand each
 * other (a message type a gateway does not know is ignored).
 */
export class RedisControl implements ControlChannel {
  readonly #pubsub: GuardedRedisPubSub;
  readonly #publisher: RedisClient;
  readonly #channel: string;
  readonly #logger: Logger;

  constructor({ pubsub, publisher, keys, logger }: RedisControlOptions) {
    this.#pubsub = pubsub;
    this.#publisher = publisher;
    this.#channel = keys.control();
    this.#logger = logger;
  }

  /**
   * PUBLISHes the message. Its reply counts the subscribers that got it, one per listening gateway
   * — on a single Redis; a Redis Cluster node counts only its own subscribers, so there `null`.
   */
  async publish(message: ControlMessage): Promise<number | null> {
    const receivers = await this.#publisher.publish(this.#channel, JSON.stringify(message));
    return this.#publisher.isCluster ? null : receivers;
  }

  /**
   * Messages published while the subscriber connection was down are lost: after it reconnects
   * (ioredis subscribes again right after `ready`; a PING's reply comes after that SUBSCRIBE is in
   * effect), `onGap` tells the listener to catch up from the store.
   */
  async subscribe(listener: (message: ControlMessage) => void, onGap?: () => void): Promise<() => void> {
    const stop = await this.#pubsub.subscribe(this.#channel, (message) => {
      if (isControlMessage(message)) listener(message);
    });
    if (!onGap) return stop;
    const subscriber = this.#pubsub.subscriber;
    const onReady = () => {
      subscriber.ping().then(
        () => onGap(),
        (err: unknown) => this.#logger.error('redis subscriber ping failed after reconnect', { err }),
      );
    };
    subscriber.on('ready', onReady);
    return () => {
      subscriber.off('ready', onReady);
      stop();
    };
  }
}
