import {
  type Attributes,
  type Context,
  context,
  isSpanContextValid,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { Task, TaskEvent, TaskStatus } from '../tasks/task.js';
import type { TaskTracer } from '../tasks/task-tracing.js';

/** The span names, one per step of a task's path (the README describes each). */
export const SPAN = {
  start: 'task.start',
  queued: 'task.queued',
  run: 'task.run',
  transition: 'task.transition',
  subscribe: 'taskCompleted.subscribe',
  deliver: 'task.deliver',
} as const;

/** The W3C `traceparent` of the span active in `ctx`. */
function traceparentOf(ctx: Context): string | undefined {
  const carrier: { traceparent?: string } = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent;
}

function failed(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: error instanceof Error ? error.message : String(error),
  });
}

function taskAttributes(task: Task): Attributes {
  return { 'task.id': task.id, 'task.kind': task.kind, 'task.user_id': task.userId };
}

/**
 * The task spans on the OpenTelemetry API. Each task carries its start span's `traceparent`, so a
 * span made for the task in any process (the worker's run, a gateway's delivery) joins its trace.
 * A task without one (tracing off at its start, or not sampled) gets no span anywhere: idle or
 * unsampled work costs a property check.
 */
export class OtelTaskTracer implements TaskTracer {
  readonly enabled = true;
  readonly #tracer: Tracer;

  constructor(tracer: Tracer) {
    this.#tracer = tracer;
  }

  startTasks<T>(count: number, start: (traceContext: string | undefined) => Promise<T>): Promise<T> {
    return this.#tracer.startActiveSpan(SPAN.start, { attributes: { 'task.count': count } }, async (span) => {
      try {
        return await start(span.isRecording() ? traceparentOf(context.active()) : undefined);
      } catch (error) {
        failed(span, error);
        throw error;
      } finally {
        span.end();
      }
    });
  }

  async runTask<T extends { readonly type: string }>(
    task: Task,
    queuedAt: number,
    signal: AbortSignal,
    run: () => Promise<T>,
  ): Promise<T> {
    if (task.traceContext === undefined) return run();
    const { parent, links } = this.#parentFor(task.traceContext);
    const attributes = { ...taskAttributes(task), 'task.attempt': task.attempts };
    const claimedAt = task.startedAt ?? Date.now();
    // The wait began before anything of this process: it hangs off the task's start.
    this.#tracer
      .startSpan(
        SPAN.queued,
        { startTime: Math.min(queuedAt, claimedAt), attributes },
        this.#taskContext(task.traceContext),
      )
      .end(claimedAt);
    const span = this.#tracer.startSpan(SPAN.run, { attributes, links }, parent);
    const onAbort = () => span.addEvent('task.abort', { 'task.abort_cause': String(signal.reason) });
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const outcome = await context.with(trace.setSpan(parent, span), run);
      span.setAttribute('task.outcome', outcome.type);
      if (outcome.type !== 'succeeded') {
        const next = (outcome as { readonly task?: Task }).task;
        span.addEvent(`task.${outcome.type}`, next ? { 'task.run_at': next.runAt } : {});
      }
      if (outcome.type === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: 'task failed' });
      return outcome;
    } catch (error) {
      failed(span, error);
      throw error;
    } finally {
      signal.removeEventListener('abort', onAbort);
      span.end();
    }
  }

  appended(event: TaskEvent, previousStatus: TaskStatus | null): void {
    const { task } = event;
    if (task.traceContext === undefined) return;
    const { parent, links } = this.#parentFor(task.traceContext);
    const now = Date.now();
    const attributes: Attributes = {
      ...taskAttributes(task),
      'task.status': task.status,
      'task.previous_status': previousStatus ?? 'NONE',
      'task.version': task.version,
      'task.attempt': task.attempts,
      'task.cursor': event.cursor,
    };
    // From just before the store's write (its `appendedAt`) to its answer: the append and the publish.
    this.#tracer
      .startSpan(
        SPAN.transition,
        { startTime: Math.min(event.appendedAt ?? now, now), attributes, links },
        parent,
      )
      .end(now);
  }

  subscribed(userId: string, after: string | null, replayed: number, startedAt: number): void {
    const attributes: Attributes = {
      'task.user_id': userId,
      'subscription.cursor': after ?? '',
      'subscription.replay_length': replayed,
    };
    this.#tracer.startSpan(SPAN.subscribe, { startTime: startedAt, attributes }).end();
  }

  delivered(event: TaskEvent, replayed: boolean, connectionId: string | undefined): void {
    const { task } = event;
    if (task.traceContext === undefined) return;
    const attributes: Attributes = {
      ...taskAttributes(task),
      'task.status': task.status,
      'task.cursor': event.cursor,
      'delivery.replayed': replayed,
      'connection.id': connectionId ?? '',
    };
    if (!replayed && event.appendedAt !== undefined) {
      attributes['delivery.lag_ms'] = Math.max(0, Date.now() - event.appendedAt);
    }
    this.#tracer.startSpan(SPAN.deliver, { attributes }, this.#taskContext(task.traceContext)).end();
  }

  /** The task's trace as a remote parent. */
  #taskContext(traceContext: string): Context {
    return propagation.extract(ROOT_CONTEXT, { traceparent: traceContext });
  }

  /**
   * The active span when it is in the task's trace (the run around a transition); else the task's
   * start, linked to the active span of another trace (e.g. the `cancelTask` operation).
   */
  #parentFor(traceContext: string): { parent: Context; links: Link[] } {
    const taskContext = this.#taskContext(traceContext);
    const active = trace.getActiveSpan()?.spanContext();
    if (!active || !isSpanContextValid(active)) return { parent: taskContext, links: [] };
    if (active.traceId === trace.getSpanContext(taskContext)?.traceId) {
      return { parent: context.active(), links: [] };
    }
    return { parent: taskContext, links: [{ context: active }] };
  }
}
