import type { Logger } from '../../logger.js';
import type { RedisClient } from './redis-connection.js';

/** One `subscribe` call: its callback, and whether it still listens. */
interface Registration {
  readonly onMessage: (message: string) => void;
  active: boolean;
}

/** What this process does with one channel while at least one listener wants it. */
interface ChannelState {
  /**
   * The listeners, replaced (never mutated) on every change, so a dispatch in progress iterates a
   * stable array; in the common case it holds one registration.
   */
  registrations: readonly Registration[];
  /** Settles when Redis answers this channel's SUBSCRIBE; rejects when it failed. */
  readonly subscribed: Promise<void>;
}

/**
 * Redis pub/sub channels shared by the listeners of this process: one SUBSCRIBE per channel while
 * at least one listener wants it, one UNSUBSCRIBE when the last one leaves, and a single
 * `message` handler on the subscriber connection that finds the channel's listeners in a map.
 * Messages are strings, passed through untouched: encoding them is the caller's business.
 *
 * After a reconnect, ioredis subscribes the connection to its channels again by itself
 * (`autoResubscribe`), so the listeners here stay in place across a lost connection.
 */
export class RedisChannels {
  readonly #publisher: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #logger: Logger;
  readonly #channels = new Map<string, ChannelState>();

  /**
   * @param publisher a connection in normal mode, for PUBLISH.
   * @param subscriber a connection this class (and the callers' `ready`/PING handling) uses in
   *   subscriber mode; its `message` events are dispatched here.
   * @param logger where a throwing listener or a failed UNSUBSCRIBE is reported.
   */
  constructor(publisher: RedisClient, subscriber: RedisClient, logger: Logger) {
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#logger = logger;
    subscriber.on('message', (channel: string, message: string) => this.#dispatch(channel, message));
  }

  /**
   * Calls `onMessage` with each message published on `channel` from now on. Resolves once Redis
   * has confirmed the SUBSCRIBE (a listener joining a channel whose SUBSCRIBE is still on its way
   * waits for that same confirmation), with a function that removes the listener again, and
   * UNSUBSCRIBEs when it was the channel's last one; calling that function twice does nothing more.
   * Subscribing the same function twice makes two listeners.
   *
   * A listener may hear messages that arrive between the SUBSCRIBE's confirmation and this
   * promise resolving; it may throw (the error is logged, the other listeners still hear the
   * message). When the SUBSCRIBE fails, the promise rejects and no listener remains.
   */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => void> {
    let state = this.#channels.get(channel);
    if (!state) state = this.#open(channel);
    const registration: Registration = { onMessage, active: true };
    state.registrations =
      state.registrations.length === 0 ? [registration] : state.registrations.concat(registration);
    try {
      await state.subscribed;
    } catch (error) {
      this.#remove(channel, state, registration);
      throw error;
    }
    const subscribed = state;
    return () => this.#remove(channel, subscribed, registration);
  }

  /** PUBLISHes `message` on `channel`; resolves with the number of clients that received it. */
  publish(channel: string, message: string): Promise<number> {
    return this.#publisher.publish(channel, message);
  }

  /** Channels this process currently listens to (or is subscribing to); for tests and metrics. */
  get channelCount(): number {
    return this.#channels.size;
  }

  #open(channel: string): ChannelState {
    const state: ChannelState = {
      registrations: [],
      subscribed: this.#subscriber.subscribe(channel).then(() => undefined),
    };
    this.#channels.set(channel, state);
    // Runs before the waiting subscribe() calls resume: none of them may find this state again.
    state.subscribed.catch(() => {
      if (this.#channels.get(channel) === state) this.#channels.delete(channel);
    });
    return state;
  }

  #remove(channel: string, state: ChannelState, registration: Registration): void {
    if (!registration.active) return;
    registration.active = false;
    state.registrations = state.registrations.filter((r) => r !== registration);
    // A state no longer in the map was already unsubscribed (or its SUBSCRIBE failed); the
    // channel may have a newer state since, which this stale removal must leave alone.
    if (state.registrations.length > 0 || this.#channels.get(channel) !== state) return;
    this.#channels.delete(channel);
    // Redis runs the commands of one connection in order: a SUBSCRIBE sent after this one (a new
    // listener of the same channel) takes effect after it, so the channel ends up subscribed.
    this.#subscriber.unsubscribe(channel).catch((err: unknown) => {
      this.#logger.warn('redis unsubscribe failed', { channel, err });
    });
  }

  #dispatch(channel: string, message: string): void {
    const state = this.#channels.get(channel);
    if (!state) return;
    const registrations = state.registrations;
    if (registrations.length === 1) {
      // The common case (one listener): no loop.
      const only = registrations[0] as Registration;
      if (only.active) this.#call(channel, only, message);
      return;
    }
    for (const registration of registrations) {
      // One listener may remove another while this message is being dispatched.
      if (registration.active) this.#call(channel, registration, message);
    }
  }

  #call(channel: string, registration: Registration, message: string): void {
    try {
      registration.onMessage(message);
    } catch (err) {
      this.#logger.error('redis channel listener threw', { channel, err });
    }
  }
}
