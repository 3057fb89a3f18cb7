import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Logger } from '../../logger.js';
import type { TaskEvent } from '../../tasks/task.js';
import type { LiveBus } from '../ports.js';
import type { RedisKeys } from './keys.js';
import type { RedisClient } from './redis-connection.js';

/**
 * Live fan-out over Redis pub/sub, one channel per user. graphql-redis-subscriptions counts the
 * listeners per channel, so this gateway subscribes to a user's channel while one of that user's
 * subscriptions is open here, and unsubscribes when the last one ends.
 */
export class RedisBus implements LiveBus {
  readonly pubsub: RedisPubSub;
  readonly #keys: RedisKeys;
  readonly #gapListeners = new Set<() => void>();
  #readyBefore = false;

  constructor(publisher: RedisClient, subscriber: RedisClient, keys: RedisKeys, logger: Logger) {
    this.pubsub = new RedisPubSub({ publisher, subscriber });
    this.#keys = keys;
    subscriber.on('ready', () => {
      if (!this.#readyBefore) {
        this.#readyBefore = true;
        return;
      }
      // ioredis re-subscribes right after 'ready'; the PING's reply comes after those
      // subscriptions are in effect, and only then is re-reading the log free of gaps.
      logger.warn('redis subscriber reconnected; re-reading logs', { listeners: this.#gapListeners.size });
      subscriber.ping().then(
        () => {
          for (const onGap of this.#gapListeners) onGap();
        },
        (err: unknown) => logger.error('redis subscriber ping failed after reconnect', { err }),
      );
    });
    if (subscriber.status === 'ready') this.#readyBefore = true;
  }

  async subscribe(
    userId: string,
    listener: (event: TaskEvent) => void,
    onGap?: () => void,
  ): Promise<() => void> {
    const id = await this.pubsub.subscribe(this.#keys.live(userId), (message: TaskEvent) =>
      listener(message),
    );
    const gap = onGap ? () => onGap() : undefined;
    if (gap) this.#gapListeners.add(gap);
    return () => {
      if (gap) this.#gapListeners.delete(gap);
      this.pubsub.unsubscribe(id);
    };
  }
}
