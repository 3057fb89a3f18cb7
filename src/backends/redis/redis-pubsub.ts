import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Callback } from 'ioredis';
import type { Logger } from '../../logger.js';
import type { RedisClient } from './redis-connection.js';

export interface GuardedRedisPubSubOptions {
  /** A connection in normal mode, for PUBLISH. */
  readonly publisher: RedisClient;
  /**
   * The connection that SUBSCRIBEs (subscriber mode). Whoever watches it for reconnects (the live
   * bus, to re-read the logs) reads it back from {@link GuardedRedisPubSub.subscriber}.
   */
  readonly subscriber: RedisClient;
  /** Where a throwing listener, a message that is not JSON and a failed UNSUBSCRIBE are reported. */
  readonly logger: Logger;
}

/**
 * graphql-redis-subscriptions' `RedisPubSub` with the guarantees it lacks. RedisPubSub does the
 * work: one SUBSCRIBE per channel while it has listeners (a listener joining a SUBSCRIBE on its
 * way waits for that same reply), one UNSUBSCRIBE when the last one leaves, and one `JSON.parse`
 * per message for all the listeners of its channel. Messages are JSON on the wire, as RedisPubSub
 * has always sent them, so gateways and workers of earlier versions understand each other.
 *
 * What this class adds, and why (line numbers are those of `dist/redis-pubsub.js`, 2.7.0):
 * - A throwing listener is logged and the channel's other listeners still get the message:
 *   RedisPubSub calls them in one `forEach` (`onMessage`, line 154), so the first throw skipped
 *   the rest and surfaced inside ioredis's reply handler.
 * - A message that is not JSON is dropped and logged once: RedisPubSub hands the raw text to the
 *   listeners when `JSON.parse` throws (line 152), which is told apart here by identity with the
 *   text received. Not with a `deserializer`: it is given `Buffer.from(message)` (line 142), and
 *   that encode and decode added 30-50% to the parse of a 375-byte live event (Node 20).
 * - Stopping twice does nothing: a second `unsubscribe(id)` throws (line 104).
 * - A failed UNSUBSCRIBE is logged: RedisPubSub drops the command's promise (line 106), and an
 *   unhandled rejection (a subscription ending after the connection closed) ends the process.
 *   Its PUNSUBSCRIBE of the same name (line 107) is not sent: nothing here uses patterns.
 * - A failed SUBSCRIBE rejects every `subscribe` waiting for it, and none of their listeners is
 *   ever called. RedisPubSub keeps each failed subscription's `[channel, listener]` entry (line 62;
 *   it never tells the caller the id that would remove it), so the listener is detached from it.
 */
export class GuardedRedisPubSub {
  readonly #pubsub: RedisPubSub;
  readonly #subscriber: RedisClient;
  readonly #logger: Logger;
  /** The text of the message RedisPubSub is dispatching right now, as Redis delivered it. */
  #message: string | undefined;
  /** Whether that message was already reported as not JSON (it reaches every listener). */
  #messageDropped = false;

  constructor({ publisher, subscriber, logger }: GuardedRedisPubSubOptions) {
    this.#subscriber = subscriber;
    this.#logger = logger;
    // Registered before RedisPubSub's handler, so it runs first for each message.
    subscriber.on('message', (_channel: string, message: string) => {
      this.#message = message;
      this.#messageDropped = false;
    });
    this.#pubsub = new RedisPubSub({ publisher, subscriber: this.#subscriberView() });
  }

  /** The connection the channels are subscribed on (it resubscribes by itself after a reconnect). */
  get subscriber(): RedisClient {
    return this.#subscriber;
  }

  /**
   * Calls `listener` with each message published on `channel` from now on, parsed from JSON.
   * Resolves once Redis has confirmed the channel's SUBSCRIBE, with a function that removes the
   * listener again (and UNSUBSCRIBEs when it was the channel's last one); calling it twice does
   * nothing more. Subscribing the same function twice makes two listeners.
   *
   * A listener may hear messages that arrive between the SUBSCRIBE's confirmation and this promise
   * resolving; it may throw (logged; the other listeners still hear the message). When the
   * SUBSCRIBE fails, the promise rejects and the listener is never called.
   */
  async subscribe(channel: string, listener: (message: unknown) => void): Promise<() => void> {
    // Cleared on stop or failure: RedisPubSub may still hold the closure below (see the class doc).
    let live: ((message: unknown) => void) | undefined = listener;
    let id: number;
    try {
      id = await this.#pubsub.subscribe(channel, (message: unknown) => {
        if (live) this.#deliver(channel, live, message);
      });
    } catch (error) {
      live = undefined;
      throw error;
    }
    return () => {
      if (!live) return;
      live = undefined;
      this.#pubsub.unsubscribe(id);
    };
  }

  /** PUBLISHes `message` as JSON on `channel` (a Buffer is sent as it is). */
  publish(channel: string, message: unknown): Promise<void> {
    return this.#pubsub.publish(channel, message);
  }

  #deliver(channel: string, listener: (message: unknown) => void, message: unknown): void {
    // The raw text came through: JSON.parse failed. (Valid JSON never parses to its own text.)
    if (typeof message === 'string' && message === this.#message) {
      if (!this.#messageDropped) {
        this.#messageDropped = true;
        this.#logger.warn('dropped a redis message that is not JSON', {
          channel,
          length: message.length,
        });
      }
      return;
    }
    try {
      listener(message);
    } catch (err) {
      this.#logger.error('redis channel listener threw', { channel, err });
    }
  }

  /**
   * The subscriber connection as RedisPubSub uses it (`on`, `subscribe`, `unsubscribe`,
   * `punsubscribe`; `psubscribe` and `quit` only for patterns and `close()`, never called here).
   */
  #subscriberView(): RedisClient {
    const subscriber = this.#subscriber;
    const view = {
      on(event: string, handler: (...args: unknown[]) => void) {
        subscriber.on(event, handler);
        return view;
      },
      subscribe: (channel: string, callback: Callback<unknown>) => subscriber.subscribe(channel, callback),
      unsubscribe: (channel: string) =>
        subscriber.unsubscribe(channel).catch((err: unknown) => {
          this.#logger.warn('redis unsubscribe failed', { channel, err });
        }),
      punsubscribe: () => Promise.resolve(0),
    };
    return view as unknown as RedisClient;
  }
}
