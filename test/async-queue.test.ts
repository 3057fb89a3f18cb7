import { describe, expect, it, vi } from 'vitest';
import { AsyncQueue, type QueueSink } from '../src/lib/async-queue.js';

/** A sink that records what it is handed, and whether it was handed synchronously. */
function recordingSink<T>() {
  const values: T[] = [];
  const ends: ({ readonly error: unknown } | undefined)[] = [];
  const sink: QueueSink<T> = {
    next: (value) => values.push(value),
    end: (failure) => ends.push(failure),
  };
  return { sink, values, ends };
}

describe('AsyncQueue, iterated', () => {
  it('should yield pushed values in order, to a waiting consumer and from the buffer', async () => {
    const queue = new AsyncQueue<number>();
    const waiting = queue.next();
    queue.push(1);
    queue.push(2);
    queue.push(3);
    expect(await waiting).toEqual({ value: 1, done: false });
    expect(await queue.next()).toEqual({ value: 2, done: false });
    expect(await queue.next()).toEqual({ value: 3, done: false });
  });

  it('should end only after the queued values are consumed', async () => {
    const queue = new AsyncQueue<string>();
    queue.push('a');
    queue.push('b');
    queue.end();
    queue.push('ignored');
    const seen: string[] = [];
    for await (const value of queue) seen.push(value);
    expect(seen).toEqual(['a', 'b']);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should settle a waiting next() when it ends', async () => {
    const queue = new AsyncQueue<number>();
    const waiting = queue.next();
    queue.end();
    expect(await waiting).toEqual({ value: undefined, done: true });
  });

  it('should throw the failure after the queued values, once', async () => {
    const queue = new AsyncQueue<number>();
    const boom = new Error('boom');
    queue.push(1);
    queue.fail(boom);
    expect(await queue.next()).toEqual({ value: 1, done: false });
    await expect(queue.next()).rejects.toBe(boom);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should reject a waiting next() when it fails', async () => {
    const queue = new AsyncQueue<number>();
    const waiting = queue.next();
    const boom = new Error('boom');
    queue.fail(boom);
    await expect(waiting).rejects.toBe(boom);
  });

  it('should settle a pending next() at once on return(), without waiting for a value', async () => {
    const onClose = vi.fn();
    const queue = new AsyncQueue<number>(onClose);
    const waiting = queue.next();
    expect(await queue.return()).toEqual({ value: undefined, done: true });
    // Settled before the event loop turns once: no value, timer or I/O is needed.
    const beforeNextTurn = new Promise((resolve) => setImmediate(() => resolve('still pending')));
    expect(await Promise.race([waiting, beforeNextTurn])).toEqual({ value: undefined, done: true });
    expect(onClose).toHaveBeenCalledOnce();
    queue.push(1);
    expect(await queue.next()).toEqual({ value: undefined, done: true });
    expect(queue.open).toBe(false);
  });

  it('should drop queued values and a pending failure on return()', async () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    queue.fail(new Error('boom'));
    await queue.return();
    expect(await queue.next()).toEqual({ value: undefined, done: true });
  });

  it('should run onClose once however it closes', async () => {
    const onClose = vi.fn();
    const queue = new AsyncQueue<number>(onClose);
    queue.push(1);
    queue.end();
    expect(onClose).not.toHaveBeenCalled();
    await queue.next();
    await queue.next();
    await queue.return();
    queue.fail(new Error('late'));
    expect(onClose).toHaveBeenCalledOnce();
  });

  it('should call an overridden closed() once instead of onClose', async () => {
    const closed = vi.fn();
    class Closing extends AsyncQueue<number> {
      protected override closed(): void {
        closed();
      }
    }
    const queue = new Closing();
    await queue.return();
    await queue.return();
    expect(closed).toHaveBeenCalledOnce();
  });
});

describe('AsyncQueue, piped', () => {
  it('should hand the buffered values, then live ones, synchronously and in order', () => {
    const queue = new AsyncQueue<number>();
    queue.push(1);
    queue.push(2);
    const { sink, values, ends } = recordingSink<number>();
    queue.pipeTo(sink);
    expect(values).toEqual([1, 2]);
    queue.push(3);
    expect(values).toEqual([1, 2, 3]);
    expect(ends).toEqual([]);
  });

  it('should deliver the end once, after the values', () => {
    const onClose = vi.fn();
    const queue = new AsyncQueue<number>(onClose);
    const { sink, values, ends } = recordingSink<number>();
    queue.pipeTo(sink);
    queue.push(1);
    queue.end();
    queue.end();
    queue.push(2);
    void queue.return();
    expect(values).toEqual([1]);
    expect(ends).toEqual([undefined]);
    expect(onClose).toHaveBeenCalledOnce();
  });

  it('should deliver a failure once', () => {
    const queue = new AsyncQueue<number>();
    const { sink, ends } = recordingSink<number>();
    queue.pipeTo(sink);
    const boom = new Error('boom');
    queue.fail(boom);
    queue.fail(new Error('again'));
    expect(ends).toEqual([{ error: boom }]);
  });

  it('should hand the values and then the end of a queue that ended before it was piped', () => {
    const onClose = vi.fn();
    const queue = new AsyncQueue<number>(onClose);
    const boom = new Error('boom');
    queue.push(1);
    queue.fail(boom);
    const { sink, values, ends } = recordingSink<number>();
    queue.pipeTo(sink);
    expect(values).toEqual([1]);
    expect(ends).toEqual([{ error: boom }]);
    expect(onClose).toHaveBeenCalledOnce();
  });

  it('should end the sink without a failure on return()', async () => {
    const onClose = vi.fn();
    const queue = new AsyncQueue<number>(onClose);
    const { sink, ends } = recordingSink<number>();
    queue.pipeTo(sink);
    await queue.return();
    await queue.return();
    expect(ends).toEqual([undefined]);
    expect(onClose).toHaveBeenCalledOnce();
  });

  it('should refuse a second consumer', () => {
    const queue = new AsyncQueue<number>();
    queue.pipeTo(recordingSink<number>().sink);
    expect(() => queue.pipeTo(recordingSink<number>().sink)).toThrow(/already consumed/);
    const iterated = new AsyncQueue<number>();
    void iterated.next();
    expect(() => iterated.pipeTo(recordingSink<number>().sink)).toThrow(/already consumed/);
  });
});
