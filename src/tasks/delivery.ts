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

/**
 * The subscriptions' streams, built so that nothing is lost or repeated at the seam between the
 * log and the live bus: listen first (buffering), read the log, then pass on only live events
 * newer than the last one read.
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

    let buffer: TaskEvent[] | null = [];
    let lastCursor = after;
    const queue = new AsyncQueue<DeliveredEvent>(() => unsubscribe());
    const deliverLive = (event: TaskEvent) => {
      if (!isFinal(event.task.status)) return;
      if (lastCursor !== null && tasks.compareCursors(event.cursor, lastCursor) <= 0) return;
      lastCursor = event.cursor;
      queue.push({ ...event, replayed: false });
    };
    const unsubscribe = await bus.subscribe(userId, (event) => {
      if (buffer) buffer.push(event);
      else deliverLive(event);
    });

    try {
      if (after !== null) {
        for (;;) {
          const page = await tasks.readEvents(userId, lastCursor, { finalOnly: true, limit: REPLAY_PAGE });
          for (const event of page) queue.push({ ...event, replayed: true });
          const last = page.at(-1);
          if (last) lastCursor = last.cursor;
          if (page.length < REPLAY_PAGE) break;
        }
      }
    } catch (error) {
      unsubscribe();
      if (error instanceof CursorExpiredError) {
        throw clientError(
          ErrorCode.CursorExpired,
          `${error.message}; reconcile with the tasks query and subscribe again without "after"`,
          { cursor: after },
        );
      }
      throw error;
    }
    const buffered = buffer;
    buffer = null;
    for (const event of buffered) deliverLive(event);
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
    const unsubscribe = await bus.subscribe(initial.userId, (event) => {
      if (event.task.id !== id) return;
      if (buffer) buffer.push(event.task);
      else deliver(event.task);
    });
    // Read again after listening, so a change between the first read and the subscription is not missed.
    const snapshot = (await tasks.get(id)) ?? initial;
    deliver(snapshot);
    const buffered = buffer;
    buffer = null;
    for (const task of buffered) deliver(task);
    return queue;
  }
}
