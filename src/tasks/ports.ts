import type { Task, TaskEvent, TaskStatus } from './task.js';

/** What {@link TaskRepository.createMany} did with one task. */
export interface CreateOutcome {
  /** The task stored: the one given, or the one its idempotency key already held. */
  readonly task: Task;
  readonly created: boolean;
}

/** What a transition does to a task: the next state, or `null` to leave it as it is. */
export type TaskChange = (current: Task) => Task | null;

export interface TaskPage {
  readonly tasks: readonly Task[];
  readonly hasNextPage: boolean;
  /** Opaque cursor of each returned task, for Relay edges. */
  readonly cursors: readonly string[];
}

export interface TaskListQuery {
  /** Only this user's tasks; unset lists every user's (service callers). */
  readonly userId?: string | undefined;
  readonly statuses?: readonly TaskStatus[] | undefined;
  readonly first: number;
  /** A cursor from a previous page; throws `InvalidCursorError` when it is not one. */
  readonly after?: string | undefined;
}

export interface ReadEventsOptions {
  /** Only events whose task reached a final status. */
  readonly finalOnly: boolean;
  readonly limit: number;
}

/**
 * Task store and per-user event log behind one port: every transition updates the task, appends
 * the event to its owner's log and publishes it to the live bus as one step, so a reader of the
 * log and a listener of the bus never disagree.
 */
export interface TaskRepository {
  /**
   * Stores new QUEUED tasks and their first events, in one batch (one transaction, or one
   * pipelined round of scripts). For a task whose idempotency key the same user has used already
   * (by an earlier call, or by an earlier task of this batch), nothing is stored and the existing
   * task is returned with `created: false`. The answers are in the order of `tasks`.
   */
  createMany(tasks: readonly Task[]): Promise<CreateOutcome[]>;
  /** The task `userId` started with idempotency key `key`, or `null` when the key is unused. */
  findByIdempotencyKey(userId: string, key: string): Promise<Task | null>;
  get(id: string): Promise<Task | null>;
  list(query: TaskListQuery): Promise<TaskPage>;
  /**
   * Applies `change` atomically; returns the stored task and its event, or `null` when nothing
   * changed. `seen` is the task as the caller last saw it (the one it claimed, the one a job
   * carries): while it is still the stored version, a store that would read the task first may
   * apply `change` to it directly. It is only a hint; the change always applies to the stored task.
   */
  transition(id: string, change: TaskChange, seen?: Task): Promise<TaskEvent | null>;
  /**
   * Events of `userId` after `after` (exclusive; `null` = from the start of the retained log),
   * oldest first. Throws `CursorExpiredError` when events after the cursor were trimmed, and
   * `InvalidCursorError` for a string this log did not issue.
   */
  readEvents(userId: string, after: string | null, options: ReadEventsOptions): Promise<TaskEvent[]>;
  /**
   * Cursor of the newest event in the user's log; for an empty log, a cursor before every event
   * it will hold, so that reading after it misses nothing.
   */
  lastCursor(userId: string): Promise<string>;
  /** Negative when `a` is older than `b`, 0 when equal, positive when newer. Both must be valid. */
  compareCursors(a: string, b: string): number;
  /** Throws `InvalidCursorError` unless `cursor` has the form this log issues. */
  assertCursor(cursor: string): void;
}

/** Fan-out of each user's events to the listeners of this process. */
export interface LiveBus {
  /**
   * Listens to the user's events; resolves once listening is in effect, with a function that
   * stops it. `onGap` is called when events may have been missed (the connection to the bus was
   * lost and is back): the listener should re-read the log after its last cursor. Neither
   * callback may throw.
   */
  subscribe(userId: string, listener: (event: TaskEvent) => void, onGap?: () => void): Promise<() => void>;
}

/** Where queued tasks wait for a worker. */
export interface TaskQueue {
  /** Tells the workers that `tasks` are queued (new, or back for a retry at `task.runAt`), in one batch. */
  enqueue(tasks: readonly Task[]): Promise<void>;
  /** Tells whoever runs `taskId` to abort it. */
  cancel(taskId: string): Promise<void>;
  /** Tasks waiting for a worker (due now or later), for the queue-depth metric. */
  depth(): Promise<number>;
}

/**
 * Told of every event this process appends (creation and each transition), after it is stored,
 * with the task's status before it (`null` for a creation). Must not throw.
 */
export type TaskEventObserver = (event: TaskEvent, previousStatus: TaskStatus | null) => void;

/** One part of the backend as a readiness probe saw it. */
export interface ProbeResult {
  /** `store`, `bus`, `queue`, `redis`. */
  readonly part: string;
  readonly ok: boolean;
  /** Why it is not ok. */
  readonly detail?: string;
}

/** Messages between the gateways of one deployment (e.g. revoking a user's connections). */
export type ControlMessage =
  | {
      readonly type: 'revoke-user-connections';
      readonly userId: string;
      /**
       * The user's stored revoked-before timestamp (epoch ms): what the user holds on a token
       * issued before it ends. Absent from gateways of earlier versions: everything of the user ends.
       */
      readonly revokedBefore?: number;
      /** Set when the sender waits for a `user-connections-revoked` answer from each gateway. */
      readonly requestId?: string;
      /** The gateway that sent it; it has acted already and ignores its own message. */
      readonly origin: string;
    }
  | {
      /** A gateway's answer to a `revoke-user-connections` message with a `requestId`. */
      readonly type: 'user-connections-revoked';
      readonly requestId: string;
      /** How many connections (WebSockets and SSE streams) the answering gateway ended. */
      readonly closed: number;
      readonly origin: string;
    };

/** Broadcast to every gateway of the deployment (this one included). */
export interface ControlChannel {
  /**
   * Resolves once the message is sent, with how many listeners (one per gateway listening,
   * this one included) it reached, or `null` when the transport cannot tell (Redis Cluster).
   */
  publish(message: ControlMessage): Promise<number | null>;
  /**
   * Resolves once listening is in effect, with a function that stops it. `onGap` is called when
   * messages may have been missed (the connection was lost and listening is in effect again).
   */
  subscribe(listener: (message: ControlMessage) => void, onGap?: () => void): Promise<() => void>;
}

/**
 * When each user's tokens were last revoked (`revokeUserConnections`): a token of the user issued
 * before that moment is refused. Durable, and shared by every gateway of the deployment.
 */
export interface RevocationStore {
  /**
   * Records that the user's tokens issued before `before` (epoch ms) are revoked, keeping the
   * later of this and any earlier record; resolves with the stored timestamp.
   */
  revokeBefore(userId: string, before: number): Promise<number>;
  /** The user's stored revoked-before timestamp (epoch ms); 0 when never revoked. */
  revokedBefore(userId: string): Promise<number>;
}

/** Answer of {@link RateLimiter.take}. */
export type RateDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly retryAfterMs: number };

/** A token bucket per key: `capacity` tokens, refilled at `capacity` per `periodMs`. */
export interface RateRule {
  readonly capacity: number;
  readonly periodMs: number;
}

export interface RateLimiter {
  /** Takes one token from `key`'s bucket, or says when one will be there. */
  take(key: string): Promise<RateDecision>;
  /** Puts back one token taken for a call that turned out to cost nothing (never above capacity). */
  giveBack(key: string): Promise<void>;
}

/** One backend (embedded or distributed): the ports the rest of the code depends on. */
export interface Backend {
  readonly tasks: TaskRepository;
  readonly bus: LiveBus;
  readonly queue: TaskQueue;
  readonly control: ControlChannel;
  readonly revocations: RevocationStore;
  /** A rate limiter shared by every process of the deployment (in-process in embedded mode). */
  rateLimiter(name: string, rule: RateRule): RateLimiter;
  /** Checks that the store, the bus and the queue answer now. */
  probe(): Promise<readonly ProbeResult[]>;
  /** Starts this process's workers; `concurrency` 0 starts none. */
  startWorkers(concurrency: number): Promise<void>;
  /**
   * Stops claiming tasks and lets the running ones finish within `graceMs`; those still running
   * then are aborted and handed back to the queue. The store stays usable. @default graceMs 0
   */
  stopWorkers(graceMs?: number): Promise<void>;
  /** Stops the workers (in-flight tasks are handed back to the queue) and releases connections. */
  close(): Promise<void>;
}
