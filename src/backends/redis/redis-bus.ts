import type { Logger } from '../../logger.js';
import type { LiveBus } from '../../tasks/ports.js';
import type { TaskEvent } from '../../tasks/task.js';
import type { RedisKeys } from './keys.js';
import type { GuardedRedisPubSub } from './redis-pubsub.js';

/** The shape a live event must have to reach a listener (the Lua scripts publish it as JSON). */
function isTaskEvent(value: unknown): value is TaskEvent {
  if (typeof value !== 'object' || value === null) return false;
  const event = value as Record<string, unknown>;
  return typeof event['cursor'] === 'string' && typeof event['task'] === 'object' && event['task'] !== null;
}

/**
 * Live fan-out over Redis pub/sub, one channel per user. {@link GuardedRedisPubSub} counts the
 * listeners per channel, so this gateway subscribes to a user's channel while one of that user's
 * subscriptions is open here, and unsubscribes when the last one ends.
 */
export class RedisBus implements LiveBus {
  readonly #pubsub: GuardedRedisPubSub;
  readonly #keys: RedisKeys;
  readonly #logger: Logger;
  readonly #gapListeners = new Set<() => void>();
  #readyBefore = false;
  /**
   * The last message checked and its event (`null` when it was not one): the listeners of one
   * channel are called one after the other with the same parsed message, checked only once.
   */
  #lastMessage: unknown;
  #lastEvent: TaskEvent | null = null;

  /** After the connection `pubsub` subscribes on reconnects, listeners are told of a possible gap. */
  constructor(pubsub: GuardedRedisPubSub, keys: RedisKeys, logger: Logger) {
    this.#pubsub = pubsub;
    this.#keys = keys;
    this.#logger = logger;
    const subscriber = pubsub.subscriber;
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
    const channel = this.#keys.live(userId);
    const stop = await this.#pubsub.subscribe(channel, (message) => {
      const event = this.#asEvent(channel, message);
      if (event) listener(event);
    });
    const gap = onGap ? () => onGap() : undefined;
    if (gap) this.#gapListeners.add(gap);
    return () => {
      if (gap) this.#gapListeners.delete(gap);
      stop();
    };
  }

  /** `message` as an event, or `null` (logged once) when it is not one. */
  #asEvent(channel: string, message: unknown): TaskEvent | null {
    if (message === this.#lastMessage) return this.#lastEvent;
    const event = isTaskEvent(message) ? message : null;
    if (!event) this.#logger.warn('dropped a malformed live event', { channel, type: typeof message });
    this.#lastMessage = message;
    this.#lastEvent = event;
    return event;
  }
}
