import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTempDir } from '../scripts/lib/local.js';
import type { Viewer } from '../src/auth/viewer.js';
import { MemoryBus } from '../src/backends/embedded/memory-bus.js';
import { SqliteRepository } from '../src/backends/embedded/sqlite-repository.js';
import type { QueueSink } from '../src/lib/async-queue.js';
import { type DeliveredEvent, Delivery } from '../src/tasks/delivery.js';
import type { Backend, LiveBus } from '../src/tasks/ports.js';
import { newTask, type TaskEvent } from '../src/tasks/task.js';
import * as transitions from '../src/tasks/transitions.js';
import { waitFor } from './utils/deferred.js';

/**
 * The seam of `Delivery.completions` (listen, read the log, pass on only newer live events) against
 * the real embedded store and bus, with appends injected at each step of the read.
 */

const USER = 'alice';
const viewer: Viewer = { userId: USER, roles: [], isService: false, expiresAt: null, issuedAt: null };

/** The in-process bus with a switch to lose events (a dropped connection) and report the gap. */
class FlakyBus implements LiveBus {
  readonly #inner = new MemoryBus();
  readonly #gapListeners = new Set<() => void>();
  connected = true;
  /** Listeners in effect now. */
  active = 0;
  /** Runs once `subscribe` is in effect, before it resolves. */
  afterSubscribe: (() => Promise<void>) | undefined;

  async subscribe(userId: string, listener: (event: TaskEvent) => void, onGap?: () => void) {
    const stop = await this.#inner.subscribe(userId, (event) => {
      if (this.connected) listener(event);
    });
    const gap = () => onGap?.();
    this.#gapListeners.add(gap);
    this.active++;
    await this.afterSubscribe?.();
    return () => {
      stop();
      if (this.#gapListeners.delete(gap)) this.active--;
    };
  }

  publish(event: TaskEvent): void {
    this.#inner.publish(event);
  }

  /** The connection is back: events may have been lost meanwhile. */
  reconnect(): void {
    this.connected = true;
    for (const gap of this.#gapListeners) gap();
  }
}

interface ReadHooks {
  /** Before the log is read (the listener is in place). */
  before?: () => Promise<void>;
  /** After the log was read, before the reader gets the page. */
  after?: () => Promise<void>;
}

const dirs: string[] = [];
const repositories: SqliteRepository[] = [];
afterEach(() => {
  for (const repository of repositories.splice(0)) repository.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** The embedded store and bus wired as `createEmbeddedBackend` wires them, plus the seams to poke. */
function embeddedParts({ eventRetention = 1_000 } = {}) {
  const dataDir = makeTempDir('tss-seam-');
  dirs.push(dataDir);
  const bus = new FlakyBus();
  const tasks = new SqliteRepository({ dataDir, eventRetention, publish: (event) => bus.publish(event) });
  repositories.push(tasks);
  const hooks: ReadHooks[] = [];
  let reads = 0;
  const readEvents = tasks.readEvents.bind(tasks);
  tasks.readEvents = async (...args) => {
    const hook = hooks.shift();
    reads++;
    await hook?.before?.();
    const page = await readEvents(...args);
    await hook?.after?.();
    return page;
  };
  const delivery = new Delivery({ tasks, bus } as Pick<Backend, 'tasks' | 'bus'> as Backend);

  /** Starts and finishes one task of the user; returns its final event. */
  async function complete(value: string): Promise<TaskEvent> {
    const [created] = await tasks.createMany([
      newTask({ userId: USER, kind: 'echo', input: { value }, external: false }),
    ]);
    if (!created) throw new Error('the task was not created');
    const { task } = created;
    await tasks.transition(task.id, transitions.claim(Date.now()));
    const done = await tasks.transition(task.id, transitions.succeed(1, { value }, Date.now()));
    if (!done) throw new Error('the task did not finish');
    return done;
  }

  return {
    tasks,
    bus,
    delivery,
    complete,
    /** Runs `hook` around the next read of the log. */
    onNextRead: (hook: ReadHooks) => hooks.push(hook),
    reads: () => reads,
  };
}

/** Everything the stream passes on, as it passes it on. */
async function follow(stream: Promise<{ pipeTo(sink: QueueSink<DeliveredEvent>): void }>) {
  const events: DeliveredEvent[] = [];
  const ends: ({ readonly error: unknown } | undefined)[] = [];
  (await stream).pipeTo({ next: (event) => events.push(event), end: (failure) => ends.push(failure) });
  return { events, ends };
}

const summary = (events: readonly DeliveredEvent[]) =>
  events.map((event) => ({ cursor: event.cursor, replayed: event.replayed }));

function expectNoDuplicate(
  events: readonly DeliveredEvent[],
  tasks: Pick<SqliteRepository, 'compareCursors'>,
) {
  const cursors = events.map((event) => event.cursor);
  expect(cursors).toEqual([...cursors].sort((a, b) => tasks.compareCursors(a, b)));
  expect(new Set(cursors).size).toBe(cursors.length);
}

function isCursorExpired(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, extensions } = error as Error & { code?: unknown; extensions?: { code?: unknown } };
  return (
    /CursorExpired/.test(error.name) || code === 'CURSOR_EXPIRED' || extensions?.code === 'CURSOR_EXPIRED'
  );
}

describe('Delivery.completions: replay then live', () => {
  it('should replay the completions after the cursor, then pass on live ones, flagged as such', async () => {
    const { delivery, complete } = embeddedParts();
    const before = await complete('before the cursor');
    const replayed = [await complete('r1'), await complete('r2')];
    const stream = await follow(delivery.completions(viewer, USER, before.cursor));
    const live = await complete('live');
    expect(summary(stream.events)).toEqual([
      ...replayed.map((event) => ({ cursor: event.cursor, replayed: true })),
      { cursor: live.cursor, replayed: false },
    ]);
    expect(stream.events.map((event) => event.task.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(stream.ends).toEqual([]);
  });

  it('should pass on only live completions without a cursor', async () => {
    const { delivery, complete } = embeddedParts();
    await complete('old');
    const stream = await follow(delivery.completions(viewer, USER, null));
    const live = await complete('new');
    expect(summary(stream.events)).toEqual([{ cursor: live.cursor, replayed: false }]);
  });

  it('should pass on a live event only when it is newer than the last one replayed', async () => {
    const { delivery, complete, bus } = embeddedParts();
    const start = await complete('start');
    const replayed = await complete('replayed');
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    // The bus repeating old events (a resent message, a second publisher) changes nothing.
    bus.publish(start);
    bus.publish(replayed);
    const live = await complete('live');
    bus.publish(live);
    expect(summary(stream.events)).toEqual([
      { cursor: replayed.cursor, replayed: true },
      { cursor: live.cursor, replayed: false },
    ]);
  });
});

describe('Delivery.completions: the seam between the log and the bus', () => {
  it('should lose and repeat nothing when completions land after listening and before the read', async () => {
    const { delivery, complete, bus } = embeddedParts();
    const start = await complete('start');
    const raced: TaskEvent[] = [];
    bus.afterSubscribe = async () => {
      bus.afterSubscribe = undefined;
      raced.push(await complete('right after subscribing'));
    };
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    // In the log and in the buffer: replayed once, its buffered copy dropped.
    expect(summary(stream.events)).toEqual(raced.map((event) => ({ cursor: event.cursor, replayed: true })));
  });

  it('should lose and repeat nothing when completions land while the log is read', async () => {
    const { tasks, delivery, complete, onNextRead } = embeddedParts();
    const start = await complete('start');
    const earlier = await complete('in the log already');
    const inRead: TaskEvent[] = [];
    const afterRead: TaskEvent[] = [];
    onNextRead({
      before: async () => {
        inRead.push(await complete('before the read'), await complete('before the read, too'));
      },
      after: async () => {
        afterRead.push(await complete('after the read'), await complete('after the read, too'));
      },
    });
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    const live = await complete('live');
    expect(summary(stream.events)).toEqual([
      ...[earlier, ...inRead].map((event) => ({ cursor: event.cursor, replayed: true })),
      // Not in the page that was read: only the buffer had them.
      ...[...afterRead, live].map((event) => ({ cursor: event.cursor, replayed: false })),
    ]);
    expectNoDuplicate(stream.events, tasks);
  });

  it('should pass on once what lands between listening and taking the baseline without a cursor', async () => {
    const { delivery, complete, bus } = embeddedParts();
    await complete('old');
    const raced: TaskEvent[] = [];
    bus.afterSubscribe = async () => {
      bus.afterSubscribe = undefined;
      raced.push(await complete('right after subscribing'));
    };
    const stream = await follow(delivery.completions(viewer, USER, null));
    const live = await complete('live');
    // Listening had begun: the raced completion is passed on once, live.
    expect(summary(stream.events)).toEqual(
      [...raced, live].map((event) => ({ cursor: event.cursor, replayed: false })),
    );
  });
});

describe('Delivery.completions: gaps in the bus', () => {
  it('should read the log again from the last cursor when the bus reports a gap', async () => {
    const { delivery, complete, bus, reads } = embeddedParts();
    const start = await complete('start');
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    const seen = await complete('seen live');
    bus.connected = false;
    const lost = [await complete('lost 1'), await complete('lost 2')];
    const readsBefore = reads();
    bus.reconnect();
    await waitFor(() => stream.events.length === 3, 'the catch-up read', 5_000);
    expect(reads()).toBe(readsBefore + 1);
    const live = await complete('live again');
    expect(summary(stream.events)).toEqual([
      { cursor: seen.cursor, replayed: false },
      ...lost.map((event) => ({ cursor: event.cursor, replayed: true })),
      { cursor: live.cursor, replayed: false },
    ]);
  });

  it('should catch up from the baseline after a gap when nothing was delivered yet', async () => {
    const { delivery, complete, bus } = embeddedParts();
    await complete('before subscribing');
    const stream = await follow(delivery.completions(viewer, USER, null));
    bus.connected = false;
    const lost = await complete('lost');
    bus.reconnect();
    await waitFor(() => stream.events.length === 1, 'the catch-up read', 5_000);
    expect(summary(stream.events)).toEqual([{ cursor: lost.cursor, replayed: true }]);
  });

  it('should read again after the first read when the gap is reported during it', async () => {
    const { delivery, complete, bus, onNextRead, reads } = embeddedParts();
    const start = await complete('start');
    const lost: TaskEvent[] = [];
    onNextRead({
      after: async () => {
        bus.connected = false;
        lost.push(await complete('lost after the read'));
        bus.reconnect();
      },
    });
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    await waitFor(() => stream.events.length === 1, 'the second read', 5_000);
    expect(reads()).toBe(2);
    expect(summary(stream.events)).toEqual(lost.map((event) => ({ cursor: event.cursor, replayed: true })));
  });
  it('should lose nothing when a second gap loses events during the catch-up read and a live event follows it', async () => {
    const { delivery, complete, bus, onNextRead, tasks } = embeddedParts();
    const start = await complete('start');
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    bus.connected = false;
    const lost = await complete('lost in the first gap');
    const later: TaskEvent[] = [];
    onNextRead({
      after: async () => {
        bus.connected = false;
        later.push(await complete('lost in the second gap'));
        bus.reconnect();
        // Live, so held while the catch-up reads; passing it on first would skip the one above.
        later.push(await complete('live after the second gap'));
      },
    });
    bus.reconnect();
    await waitFor(() => stream.events.length === 3, 'both catch-up reads', 5_000);
    expect(stream.events.map((event) => event.cursor)).toEqual([lost, ...later].map((event) => event.cursor));
    expectNoDuplicate(stream.events, tasks);
  });

  it('should lose nothing when a gap loses events during the first read and a live event follows it', async () => {
    const { delivery, complete, bus, onNextRead } = embeddedParts();
    const start = await complete('start');
    const later: TaskEvent[] = [];
    onNextRead({
      after: async () => {
        bus.connected = false;
        later.push(await complete('lost during the first read'));
        bus.reconnect();
        later.push(await complete('live after it'));
      },
    });
    const stream = await follow(delivery.completions(viewer, USER, start.cursor));
    await waitFor(() => stream.events.length === 2, 'the second read', 5_000);
    expect(stream.events.map((event) => event.cursor)).toEqual(later.map((event) => event.cursor));
  });
});

describe('Delivery.completions: expired cursors', () => {
  it('should refuse a cursor older than the retained log before streaming, releasing the listener', async () => {
    const { delivery, complete, bus } = embeddedParts({ eventRetention: 3 });
    const first = await complete('first');
    for (let i = 0; i < 3; i++) await complete(`later ${i}`);
    const error = await delivery.completions(viewer, USER, first.cursor).then(
      () => null,
      (thrown: unknown) => thrown,
    );
    expect(isCursorExpired(error)).toBe(true);
    expect(bus.active).toBe(0);
  });

  it('should accept a cursor still inside the retained log', async () => {
    // Three events per task (created, claimed, finished): the last two tasks' are retained.
    const { delivery, complete } = embeddedParts({ eventRetention: 6 });
    for (let i = 0; i < 3; i++) await complete(`early ${i}`);
    const inside = await complete('inside');
    const last = await complete('last');
    const stream = await follow(delivery.completions(viewer, USER, inside.cursor));
    expect(summary(stream.events)).toEqual([{ cursor: last.cursor, replayed: true }]);
  });
});
