/**
 * GuardedRedisPubSub against a real Redis: one SUBSCRIBE per channel shared by its listeners, the
 * UNSUBSCRIBE after the last one, quick unsubscribe/subscribe sequences, what the wrapper adds to
 * RedisPubSub (throwing listeners, idempotent stops, failed SUBSCRIBE and UNSUBSCRIBE, messages
 * that are not JSON), the JSON wire format, and the users on top of it (the live bus, with its
 * gap signal after a reconnect, and the control channel) dropping malformed messages.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisBus } from '../../src/backends/redis/redis-bus.js';
import { RedisControl } from '../../src/backends/redis/redis-control.js';
import { GuardedRedisPubSub } from '../../src/backends/redis/redis-pubsub.js';
import type { Logger } from '../../src/logger.js';
import type { ControlMessage } from '../../src/tasks/ports.js';
import type { TaskEvent } from '../../src/tasks/task.js';
import { waitFor } from '../utils/deferred.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { numsub } from './support.js';

interface LogRecord {
  readonly level: keyof Logger;
  readonly msg: string;
  readonly fields: Record<string, unknown> | undefined;
}

/** A SUBSCRIBE that Redis refuses, the way ioredis reports it to a callback. */
function refusedSubscribe(error: Error) {
  return ((...args: unknown[]) => {
    const callback = args.at(-1) as (err: Error) => void;
    setImmediate(() => callback(error));
    return Promise.resolve();
  }) as never;
}

describe('GuardedRedisPubSub', () => {
  const prefix = uniquePrefix();
  const keys = new RedisKeys(prefix);
  const publisher = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const subscriber = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
  /** A third connection, to look at the server's view (PUBSUB NUMSUB) from outside. */
  const observer = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  /** Connections a test opens for itself; closed at the end. */
  const extra: Redis[] = [];
  const logs: LogRecord[] = [];
  const record =
    (level: keyof Logger) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      logs.push({ level, msg, fields });
    };
  const logger: Logger = {
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
  };
  const logsOf = (msg: string, channel: string) =>
    logs.filter((r) => r.msg === msg && r.fields?.['channel'] === channel);
  const pubsub = new GuardedRedisPubSub({ publisher, subscriber, logger });
  let channelSeq = 0;
  const newChannel = () => `${prefix}:channel:${++channelSeq}`;

  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    for (const client of [publisher, subscriber, observer, ...extra]) client.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  /** Publishes `message` and waits until `received` holds it. */
  async function publishAndAwait(channel: string, message: string, received: readonly unknown[]) {
    await pubsub.publish(channel, message);
    await waitFor(() => received.includes(message), `${message} on ${channel}`);
  }

  describe('listeners of one channel', () => {
    it('should deliver each message, parsed once, to every listener of a channel over one SUBSCRIBE', async () => {
      const subscribeSpy = vi.spyOn(subscriber, 'subscribe');
      const channel = newChannel();
      const a: unknown[] = [];
      const b: unknown[] = [];
      // The second listener joins while the first SUBSCRIBE is still on its way.
      const [stopA, stopB] = await Promise.all([
        pubsub.subscribe(channel, (m) => a.push(m)),
        pubsub.subscribe(channel, (m) => b.push(m)),
      ]);
      expect(subscribeSpy).toHaveBeenCalledTimes(1);
      expect(await numsub(observer, channel)).toBe(1);

      await pubsub.publish(channel, { n: 1 });
      await waitFor(() => a.length === 1 && b.length === 1, 'both listeners');
      expect(a).toEqual([{ n: 1 }]);
      // One JSON.parse for both.
      expect(b[0]).toBe(a[0]);
      stopA();
      stopB();
    });

    it('should keep delivering to the other listener when one unsubscribes, even twice', async () => {
      const unsubscribeSpy = vi.spyOn(subscriber, 'unsubscribe');
      const channel = newChannel();
      const a: unknown[] = [];
      const b: unknown[] = [];
      const stopA = await pubsub.subscribe(channel, (m) => a.push(m));
      const stopB = await pubsub.subscribe(channel, (m) => b.push(m));
      stopA();
      stopA();
      expect(unsubscribeSpy).not.toHaveBeenCalled();

      await publishAndAwait(channel, 'after-a-left', b);
      // Both listeners are called in one dispatch, so `a` would have it by now.
      expect(a).toEqual([]);
      expect(await numsub(observer, channel)).toBe(1);
      stopB();
    });

    it('should UNSUBSCRIBE when the last listener leaves, once, and send no PUNSUBSCRIBE', async () => {
      const unsubscribeSpy = vi.spyOn(subscriber, 'unsubscribe');
      const punsubscribeSpy = vi.spyOn(subscriber, 'punsubscribe');
      const channel = newChannel();
      const heard: unknown[] = [];
      const stopA = await pubsub.subscribe(channel, (m) => heard.push(m));
      const stopB = await pubsub.subscribe(channel, (m) => heard.push(m));
      stopA();
      stopB();
      stopB();
      stopA();
      expect(unsubscribeSpy).toHaveBeenCalledTimes(1);
      expect(unsubscribeSpy).toHaveBeenCalledWith(channel);
      expect(punsubscribeSpy).not.toHaveBeenCalled();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
      await publisher.publish(channel, '"nobody listens"');
      expect(heard).toEqual([]);
    });

    it('should keep a listener that subscribed right after the last unsubscribe live', async () => {
      const channel = newChannel();
      const old: unknown[] = [];
      const stopOld = await pubsub.subscribe(channel, (m) => old.push(m));
      // No await between the UNSUBSCRIBE and the SUBSCRIBE: both are on their way together.
      stopOld();
      const fresh: unknown[] = [];
      const stopFresh = await pubsub.subscribe(channel, (m) => fresh.push(m));
      // The old function again, now stale: it must not touch the new subscription.
      stopOld();

      await publishAndAwait(channel, 'to-the-new-one', fresh);
      expect(old).toEqual([]);
      expect(await numsub(observer, channel)).toBe(1);
      stopFresh();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
    });

    it('should end subscribed after many quick unsubscribe/subscribe rounds', async () => {
      const channel = newChannel();
      const received: unknown[] = [];
      let stop = await pubsub.subscribe(channel, (m) => received.push(m));
      for (let round = 0; round < 20; round++) {
        // Each round's UNSUBSCRIBE and SUBSCRIBE leave together.
        stop();
        stop = await pubsub.subscribe(channel, (m) => received.push(m));
      }
      await publishAndAwait(channel, 'after-rounds', received);
      // Only the last listener remains: one delivery.
      expect(received.filter((m) => m === 'after-rounds')).toHaveLength(1);
      expect(await numsub(observer, channel)).toBe(1);
      stop();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
    });
  });

  describe('what the wrapper adds to RedisPubSub', () => {
    it('should still call the other listeners when one throws, and log the error', async () => {
      const channel = newChannel();
      const boom = new Error('listener failure');
      const stopThrower = await pubsub.subscribe(channel, () => {
        throw boom;
      });
      const received: unknown[] = [];
      const stopGood = await pubsub.subscribe(channel, (m) => received.push(m));

      await publishAndAwait(channel, 'despite-the-throw', received);
      await publishAndAwait(channel, 'and-again', received);
      expect(received).toEqual(['despite-the-throw', 'and-again']);
      const errors = logsOf('redis channel listener threw', channel);
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(errors[0]?.fields?.['err']).toBe(boom);
      stopThrower();
      stopGood();
    });

    it('should reject a failed SUBSCRIBE for every listener waiting on it and leave none behind', async () => {
      const channel = newChannel();
      const subscribeSpy = vi.spyOn(subscriber, 'subscribe');
      subscribeSpy.mockImplementationOnce(refusedSubscribe(new Error('refused')));
      const heard: unknown[] = [];
      // The second one joins the SUBSCRIBE that is about to fail.
      const results = await Promise.allSettled([
        pubsub.subscribe(channel, (m) => heard.push(m)),
        pubsub.subscribe(channel, (m) => heard.push(m)),
      ]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toContain('refused');
      expect(await numsub(observer, channel)).toBe(0);

      const received: unknown[] = [];
      const stop = await pubsub.subscribe(channel, (m) => received.push(m));
      // A fresh SUBSCRIBE, not the failed one's state.
      expect(subscribeSpy).toHaveBeenCalledTimes(2);
      await publishAndAwait(channel, 'after-the-failure', received);
      expect(heard).toEqual([]);
      stop();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
    });

    it('should log a failed UNSUBSCRIBE instead of leaving its rejection unhandled', async () => {
      const channel = newChannel();
      const stop = await pubsub.subscribe(channel, () => {});
      vi.spyOn(subscriber, 'unsubscribe').mockImplementationOnce((() =>
        Promise.reject(new Error('Connection is closed.'))) as never);
      stop();
      await waitFor(() => logsOf('redis unsubscribe failed', channel).length === 1, 'the logged failure');
      vi.restoreAllMocks();
      // The refused UNSUBSCRIBE never reached Redis.
      await subscriber.unsubscribe(channel);
    });

    it('should drop a message that is not JSON, logging it once for all listeners', async () => {
      const channel = newChannel();
      const a: unknown[] = [];
      const b: unknown[] = [];
      const stopA = await pubsub.subscribe(channel, (m) => a.push(m));
      const stopB = await pubsub.subscribe(channel, (m) => b.push(m));

      for (const malformed of ['{"cursor":', 'not json', 'task-1'])
        await publisher.publish(channel, malformed);
      // A JSON string arrives as that string (cancellations are task ids sent this way).
      await publisher.publish(channel, '"task-1"');
      await waitFor(() => a.length === 1 && b.length === 1, 'the valid message');
      expect(a).toEqual(['task-1']);
      expect(b).toEqual(['task-1']);
      const dropped = logsOf('dropped a redis message that is not JSON', channel);
      expect(dropped.map((r) => r.fields?.['length'])).toEqual([10, 8, 6]);
      stopA();
      stopB();
    });

    it('should send JSON on the wire, as graphql-redis-subscriptions always has', async () => {
      const channel = newChannel();
      const raw = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
      extra.push(raw);
      const texts: string[] = [];
      raw.on('message', (_channel: string, text: string) => texts.push(text));
      await raw.subscribe(channel);

      const message: ControlMessage = { type: 'revoke-user-connections', userId: 'bob', origin: 'gw-1' };
      await pubsub.publish(channel, message);
      await pubsub.publish(channel, 'task-1');
      await waitFor(() => texts.length === 2, 'both messages');
      expect(texts).toEqual([JSON.stringify(message), '"task-1"']);
      raw.disconnect();
    });
  });

  describe('the live bus on top of it', () => {
    const event = (cursor: string) => ({
      cursor,
      appendedAt: 1,
      task: { id: `t-${cursor}`, userId: 'alice' },
    });

    it('should hand parsed events to every live-bus listener and drop malformed ones', async () => {
      const bus = new RedisBus(pubsub, keys, logger);
      const a: TaskEvent[] = [];
      const b: TaskEvent[] = [];
      const stopA = await bus.subscribe('alice', (e) => a.push(e));
      const stopB = await bus.subscribe('alice', (e) => b.push(e));
      const channel = keys.live('alice');

      for (const malformed of ['{"cursor":', 'not json', '42', 'null', '{"cursor":"1-0"}']) {
        await publisher.publish(channel, malformed);
      }
      await publisher.publish(channel, JSON.stringify(event('1-0')));
      await waitFor(() => a.length === 1 && b.length === 1, 'the valid event');
      expect(a[0]).toEqual(event('1-0'));
      // Parsed once for both listeners.
      expect(b[0]).toBe(a[0]);
      // Each malformed message is logged once: by the wrapper when it is not JSON, by the bus when
      // it is JSON but not an event.
      expect(logsOf('dropped a redis message that is not JSON', channel)).toHaveLength(2);
      expect(logsOf('dropped a malformed live event', channel)).toHaveLength(3);

      // The bus keeps working after them.
      await publisher.publish(channel, JSON.stringify(event('2-0')));
      await waitFor(() => a.length === 2 && b.length === 2, 'the next event');
      expect(a.map((e) => e.cursor)).toEqual(['1-0', '2-0']);
      stopA();
      stopB();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
    });

    it('should signal a possible gap once the subscriber connection is back, and keep delivering', async () => {
      const ownSubscriber = new Redis(TEST_REDIS_URL, {
        maxRetriesPerRequest: null,
        enableReadyCheck: false,
      });
      extra.push(ownSubscriber);
      await new Promise((resolve) => ownSubscriber.once('ready', resolve));
      const ownPubsub = new GuardedRedisPubSub({ publisher, subscriber: ownSubscriber, logger });
      const bus = new RedisBus(ownPubsub, keys, logger);
      const received: TaskEvent[] = [];
      let gaps = 0;
      const stop = await bus.subscribe(
        'gap-user',
        (e) => received.push(e),
        () => gaps++,
      );
      const channel = keys.live('gap-user');

      // Drops the connection; ioredis reconnects and subscribes the channel again by itself.
      ownSubscriber.disconnect(true);
      await waitFor(() => gaps === 1, 'the gap signal');
      expect(logs.some((r) => r.msg === 'redis subscriber reconnected; re-reading logs')).toBe(true);
      // The signal comes after the channel is subscribed again: what is published now arrives.
      expect(await numsub(observer, channel)).toBe(1);
      await publisher.publish(channel, JSON.stringify(event('3-0')));
      await waitFor(() => received.length === 1, 'the event after the reconnect');
      stop();
      await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
      ownSubscriber.disconnect();
    });
  });

  it('should carry control messages as JSON, dropping malformed ones and ignoring unknown types', async () => {
    const control = new RedisControl({ pubsub, publisher, keys, logger });
    const received: ControlMessage[] = [];
    const stop = await control.subscribe((message) => received.push(message));
    const message: ControlMessage = { type: 'revoke-user-connections', userId: 'bob', origin: 'gw-1' };
    const answer: ControlMessage = {
      type: 'user-connections-revoked',
      requestId: 'r1',
      closed: 2,
      origin: 'gw-2',
    };

    await publisher.publish(keys.control(), '{oops');
    await publisher.publish(keys.control(), JSON.stringify({ type: 'from-a-newer-gateway' }));
    await publisher.publish(keys.control(), JSON.stringify({ ...message, revokedBefore: 'yesterday' }));
    // PUBLISH's reply counts the listening connections: this test's subscriber.
    expect(await control.publish(message)).toBe(1);
    await control.publish(answer);
    await waitFor(() => received.length === 2, 'the control messages');
    expect(received).toEqual([message, answer]);
    expect(logsOf('dropped a redis message that is not JSON', keys.control())).toHaveLength(1);
    stop();
  });

  it('should signal a possible gap on the control channel once its subscriber connection is back', async () => {
    const ownSubscriber = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
    extra.push(ownSubscriber);
    await new Promise((resolve) => ownSubscriber.once('ready', resolve));
    const control = new RedisControl({
      pubsub: new GuardedRedisPubSub({ publisher, subscriber: ownSubscriber, logger }),
      publisher,
      keys: new RedisKeys(`${prefix}:gap`),
      logger,
    });
    const received: ControlMessage[] = [];
    let gaps = 0;
    const stop = await control.subscribe(
      (message) => received.push(message),
      () => gaps++,
    );
    ownSubscriber.disconnect(true);
    await waitFor(() => gaps === 1, 'the gap signal');
    // The signal comes after the channel is subscribed again: what is published now arrives.
    const message: ControlMessage = { type: 'revoke-user-connections', userId: 'gap', origin: 'gw-1' };
    expect(await control.publish(message)).toBe(1);
    await waitFor(() => received.length === 1, 'the message after the reconnect');
    stop();
    ownSubscriber.disconnect();
  });
});
