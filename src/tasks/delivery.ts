import type { Viewer } from '../auth/viewer.js';
import { AsyncQueue } from '../lib/async-queue.js';
import { CursorExpiredError, InvalidCursorError, InvalidInputError, NotFoundError } from './errors.js';
import type { Backend } from './ports.js';
import { isFinal, type Task, type TaskEvent } from './task.js';
import { assertCanActFor, visibleTo } from './task-service.js';
import { taskTracer } from './task-tracing.js';
import { assertUserId } from './user-id.js';

/** A `taskCompleted` payload. */
export interface DeliveredEvent extends TaskEvent {
  readonly replayed: boolean;
}

/** Replay reads the log in pages of this many events. */
const REPLAY_PAGE = 500;

/** The log's error, naming the cursor the subscriber last held. */
function cursorExpired(error: CursorExpiredError, cursor: string | null): CursorExpiredError {
  return new CursorExpiredError(error.message, { cursor });
}

type Tasks = Backend['tasks'];

/** One taskCompleted stream: its state in fields, its steps as methods (no closure per step). */
class CompletionQueue extends AsyncQueue<DeliveredEvent> {
  /** Live events held back while the log is being read; `null` when passing them on directly. */
  buffer: TaskEvent[] | null = [];
  /** Newest event passed on; a live event at or below it is a duplicate. */
  lastCursor: string | null;
  /** Where a catch-up reads from when nothing was delivered yet (subscribed without `after`). */
  baseline: string | null = null;
  gapWhileReading = false;
  /** Events passed on from the log (`replayed: true`). */
  replayedCount = 0;
  unsubscribe: () => void = noop;
  readonly onEvent: (event: TaskEvent) => void;
  readonly onGap: () => void;

  constructor(
    readonly tasks: Tasks,
    readonly userId: string,
    after: string | null,
  ) {
    super();
    this.lastCursor = after;
    // The two callbacks the bus needs share one context.
    this.onEvent = (event) => {
      if (this.buffer) this.buffer.push(event);
      else this.deliver(event, false);
    };
    this.onGap = () => this.catchUp();
  }

  protected override closed(): void {
    this.unsubscribe();
  }

  deliver(event: TaskEvent, replayed: boolean): void {
    if (!isFinal(event.task.status)) return;
    if (this.lastCursor !== null && this.tasks.compareCursors(event.cursor, this.lastCursor) <= 0) return;
    this.lastCursor = event.cursor;
    if (replayed) this.replayedCount++;
    this.push({ ...event, replayed });
  }

  async readLog(from: string | null): Promise<void> {
    for (let cursor = from; ; ) {
      const page = await this.tasks.readEvents(this.userId, cursor, { finalOnly: true, limit: REPLAY_PAGE });
      for (const event of page) this.deliver(event, true);
      cursor = page.at(-1)?.cursor ?? cursor;
      if (page.length < REPLAY_PAGE) return;
    }
  }

  drainBuffer(): void {
    const held = this.buffer ?? [];
    this.buffer = null;
    for (const event of held) this.deliver(event, false);
  }

  /**
   * Reads the log again while the bus reported a gap during the last read. Live events stay held
   * until no gap is pending: passing them on earlier would move `lastCursor` past events the
   * second gap lost, and the next read would start after them.
   */
  async rereadWhileGaps(): Promise<void> {
    while (this.gapWhileReading && this.open) {
      this.gapWhileReading = false;
      await this.readLog(this.lastCursor ?? this.baseline);
    }
  }

  catchUp(): void {
    if (!this.open) return;
    if (this.buffer) {
      this.gapWhileReading = true;
      return;
    }
    this.buffer = [];
    this.gapWhileReading = true;
    this.rereadWhileGaps().then(
      () => this.drainBuffer(),
      (error: unknown) =>
        this.fail(error instanceof CursorExpiredError ? cursorExpired(error, this.lastCursor) : error),
    );
  }
}

const noop = () => {};

/**
 * The subscriptions' streams, built so that nothing is lost or repeated at the seam between the
 * log and the live bus: listen first (buffering), read the log, then pass on only live events
 * newer than the last one read. When the bus reports a gap (its connection dropped and came
 * back), the same catch-up runs again from the last delivered cursor.
 */
export class Delivery {
  readonly #backend: Backend;

  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /**
   * Every task of `userId` that reaches a final status; with `after`, first the completions after
   * that cursor from the log (`replayed: true`). Throws {@link CursorExpiredError} before
   * streaming when the cursor is older than the retained log.
   */
  async completions(
    viewer: Viewer,
    userId: string,
    after: string | null,
  ): Promise<AsyncQueue<DeliveredEvent>> {
    assertUserId(userId);
    assertCanActFor(viewer, userId);
    const startedAt = Date.now();
    const { tasks, bus } = this.#backend;
    if (after !== null) {
      try {
        tasks.assertCursor(after);
      } catch (error) {
        if (error instanceof InvalidCursorError) {
          throw new InvalidInputError('after', error.message);
        }
        throw error;
      }
    }

    const queue = new CompletionQueue(tasks, userId, after);
    queue.unsubscribe = await bus.subscribe(userId, queue.onEvent, queue.onGap);
    try {
      if (after === null) queue.baseline = await tasks.lastCursor(userId);
      else await queue.readLog(after);
      await queue.rereadWhileGaps();
    } catch (error) {
      queue.unsubscribe();
      if (error instanceof CursorExpiredError) throw cursorExpired(error, queue.lastCursor ?? after);
      throw error;
    }
    queue.drainBuffer();
    taskTracer().subscribed(userId, after, queue.replayedCount, startedAt);
    return queue;
  }

  /**
   * The task's current state, then each change, ending after a final one.
   * {@link NotFoundError} alike for no task and for another user's (see `visibleTo`).
   */
  async taskUpdates(viewer: Viewer, id: string): Promise<AsyncQueue<Task>> {
    const { tasks, bus } = this.#backend;
    const initial = visibleTo(viewer, await tasks.get(id));
    if (!initial) throw new NotFoundError(id);

    let buffer: Task[] | null = [];
    let version = 0;
    const queue = new AsyncQueue<Task>(() => unsubscribe());
    const deliver = (task: Task) => {
      if (task.version <= version) return;
      version = task.version;
      queue.push(task);
      if (isFinal(task.status)) queue.end();
    };
    const refresh = () => {
      tasks.get(id).then(
        (task) => task && deliver(task),
        (error: unknown) => queue.fail(error),
      );
    };
    const unsubscribe = await bus.subscribe(
      initial.userId,
      (event) => {
        if (event.task.id !== id) return;
        if (buffer) buffer.push(event.task);
        else deliver(event.task);
      },
      // Missed changes collapse into the current state, which is all a follower needs.
      refresh,
    );
    // Read again after listening, so a change between the first read and the subscription is not missed.
    const snapshot = (await tasks.get(id)) ?? initial;
    deliver(snapshot);
    const held = buffer;
    buffer = null;
    for (const task of held) deliver(task);
    return queue;
  }
}
