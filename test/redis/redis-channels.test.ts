/**
 * RedisChannels against a real Redis: one SUBSCRIBE per channel shared by its listeners, the
 * UNSUBSCRIBE after the last one, quick unsubscribe/subscribe sequences, and the JSON users on
 * top of it (the live bus and the control channel) dropping malformed messages.
 */
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisBus } from '../../src/backends/redis/redis-bus.js';
import { RedisChannels } from '../../src/backends/redis/redis-channels.js';
import { RedisControl } from '../../src/backends/redis/redis-control.js';
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

describe('RedisChannels', () => {
  const prefix = uniquePrefix();
  const keys = new RedisKeys(prefix);
  const publisher = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
  const subscriber = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null, enableReadyCheck: false });
  /** A third connection, to look at the server's view (PUBSUB NUMSUB) from outside. */
  const observer = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
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
  const channels = new RedisChannels(publisher, subscriber, logger);
  let channelSeq = 0;
  const newChannel = () => `${prefix}:channel:${++channelSeq}`;

  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(async () => {
    for (const client of [publisher, subscriber, observer]) client.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  /** Publishes `message` and waits until `received` holds it. */
  async function publishAndAwait(channel: string, message: string, received: readonly string[]) {
    await channels.publish(channel, message);
    await waitFor(() => received.includes(message), `${message} on ${channel}`);
  }

  it('should deliver each message to every listener of a channel over one SUBSCRIBE', async () => {
    const subscribeSpy = vi.spyOn(subscriber, 'subscribe');
    const channel = newChannel();
    const a: string[] = [];
    const b: string[] = [];
    // The second listener joins while the first SUBSCRIBE is still on its way.
    const [stopA, stopB] = await Promise.all([
      channels.subscribe(channel, (m) => a.push(m)),
      channels.subscribe(channel, (m) => b.push(m)),
    ]);
    expect(subscribeSpy).toHaveBeenCalledTimes(1);
    expect(await numsub(observer, channel)).toBe(1);

    // One subscribed connection, so Redis delivers the message once.
    expect(await channels.publish(channel, 'first')).toBe(1);
    await waitFor(() => a.includes('first') && b.includes('first'), 'both listeners');
    expect(a).toEqual(['first']);
    expect(b).toEqual(['first']);
    stopA();
    stopB();
  });

  it('should keep delivering to the other listener when one unsubscribes, even twice', async () => {
    const unsubscribeSpy = vi.spyOn(subscriber, 'unsubscribe');
    const channel = newChannel();
    const a: string[] = [];
    const b: string[] = [];
    const stopA = await channels.subscribe(channel, (m) => a.push(m));
    const stopB = await channels.subscribe(channel, (m) => b.push(m));
    stopA();
    stopA();
    expect(unsubscribeSpy).not.toHaveBeenCalled();

    await publishAndAwait(channel, 'after-a-left', b);
    // Both listeners are called in one dispatch, so `a` would have it by now.
    expect(a).toEqual([]);
    expect(await numsub(observer, channel)).toBe(1);
    stopB();
  });

  it('should UNSUBSCRIBE when the last listener leaves, once', async () => {
    const unsubscribeSpy = vi.spyOn(subscriber, 'unsubscribe');
    const channel = newChannel();
    const stopA = await channels.subscribe(channel, () => {});
    const stopB = await channels.subscribe(channel, () => {});
    const before = channels.channelCount;
    stopA();
    stopB();
    stopB();
    stopA();
    expect(unsubscribeSpy).toHaveBeenCalledTimes(1);
    expect(unsubscribeSpy).toHaveBeenCalledWith(channel);
    expect(channels.channelCount).toBe(before - 1);
    await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
  });

  it('should keep a listener that subscribed right after the last unsubscribe live', async () => {
    const channel = newChannel();
    const old: string[] = [];
    const stopOld = await channels.subscribe(channel, (m) => old.push(m));
    // No await between the UNSUBSCRIBE and the SUBSCRIBE: both are on their way together.
    stopOld();
    const fresh: string[] = [];
    const stopFresh = await channels.subscribe(channel, (m) => fresh.push(m));
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
    const received: string[] = [];
    let stop = await channels.subscribe(channel, (m) => received.push(m));
    for (let round = 0; round < 20; round++) {
      // Each round's UNSUBSCRIBE and SUBSCRIBE leave together.
      stop();
      stop = await channels.subscribe(channel, (m) => received.push(m));
    }
    await publishAndAwait(channel, 'after-rounds', received);
    // Only the last listener remains: one delivery.
    expect(received.filter((m) => m === 'after-rounds')).toHaveLength(1);
    expect(await numsub(observer, channel)).toBe(1);
    stop();
    await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
  });

  it('should still call the other listeners when one throws, and log the error', async () => {
    const channel = newChannel();
    const boom = new Error('listener failure');
    const stopThrower = await channels.subscribe(channel, () => {
      throw boom;
    });
    const received: string[] = [];
    const stopGood = await channels.subscribe(channel, (m) => received.push(m));

    await publishAndAwait(channel, 'despite-the-throw', received);
    await publishAndAwait(channel, 'and-again', received);
    expect(received).toEqual(['despite-the-throw', 'and-again']);
    const errors = logs.filter(
      (r) => r.msg === 'redis channel listener threw' && r.fields?.['channel'] === channel,
    );
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(errors[0]?.fields?.['err']).toBe(boom);
    stopThrower();
    stopGood();
  });

  it('should reject a failed SUBSCRIBE and leave no listener behind', async () => {
    const channel = newChannel();
    const before = channels.channelCount;
    vi.spyOn(subscriber, 'subscribe').mockImplementationOnce(() => Promise.reject(new Error('refused')));
    const heard: string[] = [];
    await expect(channels.subscribe(channel, (m) => heard.push(m))).rejects.toThrow('refused');
    expect(channels.channelCount).toBe(before);
    vi.restoreAllMocks();

    const received: string[] = [];
    const stop = await channels.subscribe(channel, (m) => received.push(m));
    await publishAndAwait(channel, 'after-the-failure', received);
    expect(heard).toEqual([]);
    stop();
  });

  it('should hand parsed events to every live-bus listener and drop malformed ones', async () => {
    const bus = new RedisBus(channels, subscriber, keys, logger);
    const a: TaskEvent[] = [];
    const b: TaskEvent[] = [];
    const stopA = await bus.subscribe('alice', (event) => a.push(event));
    const stopB = await bus.subscribe('alice', (event) => b.push(event));
    const channel = keys.live('alice');
    const event = (cursor: string) => ({
      cursor,
      appendedAt: 1,
      task: { id: `t-${cursor}`, userId: 'alice' },
    });

    for (const malformed of ['{"cursor":', 'not json', '42', 'null', '{"cursor":"1-0"}']) {
      await channels.publish(channel, malformed);
    }
    await channels.publish(channel, JSON.stringify(event('1-0')));
    await waitFor(() => a.length === 1 && b.length === 1, 'the valid event');
    expect(a[0]).toEqual(event('1-0'));
    // Parsed once for both listeners.
    expect(b[0]).toBe(a[0]);
    const dropped = logs.filter(
      (r) => r.msg === 'dropped a malformed live event' && r.fields?.['channel'] === channel,
    );
    expect(dropped).toHaveLength(5);

    // The bus keeps working after them.
    await channels.publish(channel, JSON.stringify(event('2-0')));
    await waitFor(() => a.length === 2 && b.length === 2, 'the next event');
    expect(a.map((e) => e.cursor)).toEqual(['1-0', '2-0']);
    stopA();
    stopB();
    await waitFor(async () => (await numsub(observer, channel)) === 0, 'NUMSUB 0');
  });

  it('should carry control messages as JSON and drop malformed ones', async () => {
    const control = new RedisControl(channels, keys, logger);
    const received: ControlMessage[] = [];
    const stop = await control.subscribe((message) => received.push(message));
    const message: ControlMessage = { type: 'revoke-user-connections', userId: 'bob', origin: 'gw-1' };

    await channels.publish(keys.control(), '{oops');
    await channels.publish(keys.control(), JSON.stringify({ type: 'from-a-newer-gateway' }));
    await control.publish(message);
    await waitFor(() => received.length === 1, 'the control message');
    expect(received).toEqual([message]);
    expect(logs.some((r) => r.msg === 'dropped a control message that is not JSON')).toBe(true);

    // The wire format is plain JSON, as graphql-redis-subscriptions sent it.
    const raw: string[] = [];
    const stopRaw = await channels.subscribe(keys.control(), (m) => raw.push(m));
    await control.publish(message);
    await waitFor(() => raw.length === 1, 'the raw control message');
    expect(raw).toEqual([JSON.stringify(message)]);
    stopRaw();
    stop();
  });
});
