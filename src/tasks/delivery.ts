import type { Viewer } from '../auth/viewer.js';
import { CursorExpiredError, clientError, ErrorCode, InvalidCursorError } from '../errors.js';
import { AsyncQueue } from '../lib/async-queue.js';
import type { Backend } from '../store/ports.js';
import { isFinal, type Task, type TaskEvent } from './task.js';
import { assertCanActFor } from './task-service.js';

/** A `taskCompleted` payload. */
export interface DeliveredEvent extends TaskEvent {
  readonly replayed: boolean;
}

/** Replay reads the log in pages of this many events. */
const REPLAY_PAGE = 500;

function cursorExpired(error: CursorExpiredError, after: string | null) {
  return clientError(
    ErrorCode.CursorExpired,
    `${error.message}; reconcile with the tasks query and subscribe again without "after"`,
    { cursor: after },
  );
}

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
   * that cursor from the log (`replayed: true`). Throws CURSOR_EXPIRED before streaming when the
   * cursor is older than the retained log.
   */
  async completions(
    viewer: Viewer,
    userId: string,
    after: string | null,
  ): Promise<AsyncQueue<DeliveredEvent>> {
    assertCanActFor(viewer, userId);
    const { tasks, bus } = this.#backend;
    if (after !== null) {
      try {
        tasks.assertCursor(after);
      } catch (error) {
        if (error instanceof InvalidCursorError) {
          throw clientError(ErrorCode.BadUserInput, `after: ${error.message}`, { field: 'after' });
        }
        throw error;
      }
    }

    /** Live events held back while the log is being read; `null` when passing them on directly. */
    let buffer: TaskEvent[] | null = [];
    /** Newest event passed on; a live event at or below it is a duplicate. */
    let lastCursor = after;
    /** Where a catch-up reads from when nothing was delivered yet (subscribed without `after`). */
    let baseline: string | null = null;
    let gapWhileReading = false;

    const queue = new AsyncQueue<DeliveredEvent>(() => unsubscribe());
    const isNew = (event: TaskEvent) =>
      lastCursor === null || tasks.compareCursors(event.cursor, lastCursor) > 0;
    const deliver = (event: TaskEvent, replayed: boolean) => {
      if (!isFinal(event.task.status) || !isNew(event)) return;
      lastCursor = event.cursor;
      queue.push({ ...event, replayed });
    };
    const readLog = async (from: string | null) => {
      for (let cursor = from; ; ) {
        const page = await tasks.readEvents(userId, cursor, { finalOnly: true, limit: REPLAY_PAGE });
        for (const event of page) deliver(event, true);
        cursor = page.at(-1)?.cursor ?? cursor;
        if (page.length < REPLAY_PAGE) return;
      }
    };
    const drainBuffer = () => {
      const held = buffer ?? [];
      buffer = null;
      for (const event of held) deliver(event, false);
    };
    const catchUp = () => {
      if (!queue.open) return;
      if (buffer) {
        gapWhileReading = true;
        return;
      }
      buffer = [];
      readLog(lastCursor ?? baseline).then(
        () => {
          drainBuffer();
          if (gapWhileReading) {
            gapWhileReading = false;
            catchUp();
          }
        },
        (error: unknown) =>
          queue.fail(error instanceof CursorExpiredError ? cursorExpired(error, lastCursor) : error),
      );
    };

    const unsubscribe = await bus.subscribe(
      userId,
      (event) => {
        if (buffer) buffer.push(event);
        else deliver(event, false);
      },
      catchUp,
    );
    try {
      if (after === null) baseline = await tasks.lastCursor(userId);
      else await readLog(after);
    } catch (error) {
      unsubscribe();
      if (error instanceof CursorExpiredError) throw cursorExpired(error, after);
      throw error;
    }
    drainBuffer();
    if (gapWhileReading) {
      gapWhileReading = false;
      catchUp();
    }
    return queue;
  }

  /**
   * The task's current state, then each change, ending after a final one. FORBIDDEN for another
   * user's task, NOT_FOUND for no task.
   */
  async taskUpdates(viewer: Viewer, id: string): Promise<AsyncQueue<Task>> {
    const { tasks, bus } = this.#backend;
    const initial = await tasks.get(id);
    if (!initial) throw clientError(ErrorCode.NotFound, `no task with id ${JSON.stringify(id)}`, { id });
    assertCanActFor(viewer, initial.userId);

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
