import type { TaskEventObserver } from './ports.js';
import type { Task, TaskEvent, TaskStatus } from './task.js';

/**
 * Where the task domain tells a tracer what happens to a task. The domain only passes an opaque
 * trace context (a W3C `traceparent` string, kept on the task as {@link Task.traceContext}); what
 * a span is lives in `src/observability/`. Until tracing starts (`OTEL_*` variables), the
 * {@link NO_TRACING} tracer is in place: every call runs its callback and records nothing.
 */
export interface TaskTracer {
  /** Whether anything is recorded; `false` for {@link NO_TRACING}. */
  readonly enabled: boolean;
  /**
   * Runs one start call of `count` tasks; `start` gets the trace context each new task carries
   * (`undefined` when this call is not sampled: the tasks then carry none).
   */
  startTasks<T>(count: number, start: (traceContext: string | undefined) => Promise<T>): Promise<T>;
  /**
   * Runs one attempt of a claimed (RUNNING) task that waited in the queue since `queuedAt` (epoch
   * ms); the outcome's `type` is recorded (`retry`, `cancelled`, `handed-back`…).
   */
  runTask<T extends { readonly type: string }>(
    task: Task,
    queuedAt: number,
    signal: AbortSignal,
    run: () => Promise<T>,
  ): Promise<T>;
  /** An event this process appended (and published), with the task's status before it. */
  appended(event: TaskEvent, previousStatus: TaskStatus | null): void;
  /** A `taskCompleted` subscription started at `startedAt` (epoch ms), after replaying `replayed` events. */
  subscribed(userId: string, after: string | null, replayed: number, startedAt: number): void;
  /** A completion handed to one subscription (`connectionId`: its WebSocket or HTTP request). */
  delivered(event: TaskEvent, replayed: boolean, connectionId: string | undefined): void;
}

/** The tracer while tracing is off: nothing recorded, no task carries a trace context. */
export const NO_TRACING: TaskTracer = {
  enabled: false,
  startTasks: (_count, start) => start(undefined),
  runTask: (_task, _queuedAt, _signal, run) => run(),
  appended: () => {},
  subscribed: () => {},
  delivered: () => {},
};

let current: TaskTracer = NO_TRACING;

/** The tracer in place (the one {@link useTaskTracer} set, else {@link NO_TRACING}). */
export function taskTracer(): TaskTracer {
  return current;
}

/** Puts `tracer` in place for this process (tracing start-up); {@link NO_TRACING} takes it out. */
export function useTaskTracer(tracer: TaskTracer): void {
  current = tracer;
}

/**
 * `observe`, also telling the tracer of each event when tracing is on; `observe` itself when it
 * is off, so a backend without tracing runs exactly the observer it had.
 */
export function observedWithTracing(observe: TaskEventObserver): TaskEventObserver {
  const tracer = current;
  if (!tracer.enabled) return observe;
  return (event, previousStatus) => {
    observe(event, previousStatus);
    tracer.appended(event, previousStatus);
  };
}
