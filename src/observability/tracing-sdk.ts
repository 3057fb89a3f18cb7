/**
 * The OpenTelemetry SDK of a process with tracing on: loaded only by `startTracing` (a dynamic
 * import), so a process with tracing off never loads it.
 */
import { randomUUID } from 'node:crypto';
import { setCurrentOtelContext, useOpenTelemetry } from '@envelop/opentelemetry';
import {
  type Attributes,
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type SpanKind,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NodeTracerProvider,
  ParentBasedSampler,
  type Sampler,
  SamplingDecision,
  type SamplingResult,
  type SpanExporter,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-node';
import { BullMQOtel } from 'bullmq-otel';
import type { Plugin } from 'graphql-yoga';
import { useDeliveryTracing } from '../graphql/plugins/delivery-tracing.js';
import { useTaskTracer } from '../tasks/task-tracing.js';
import { OtelTaskTracer } from './otel-task-tracer.js';
import type { ActiveTracing, SamplerSettings, TracingSettings } from './tracing.js';

/** The tracer (instrumentation scope) name of every span this service makes. */
export const TRACER_NAME = 'task-status-service';

/**
 * BullMQ's upkeep, which bullmq-otel traces as a root span each time (the stalled-job check every
 * half lock duration, lock renewals, fetches): not any task's path, so never sampled.
 */
const BULLMQ_UPKEEP: ReadonlySet<string> = new Set([
  'startStalledCheckTimer',
  'moveStalledJobsToWait',
  'extendLocks',
  'getNextJob',
  'close',
]);

/** `sampler`, except for root spans of {@link BULLMQ_UPKEEP}. */
class WithoutBullmqUpkeep implements Sampler {
  constructor(readonly sampler: Sampler) {}
  shouldSample(
    parent: Context,
    traceId: string,
    name: string,
    kind: SpanKind,
    attributes: Attributes,
    links: Link[],
  ): SamplingResult {
    const [operation = '', queue] = name.split(' ');
    if (queue !== undefined && BULLMQ_UPKEEP.has(operation) && !trace.getSpanContext(parent)) {
      return { decision: SamplingDecision.NOT_RECORD };
    }
    return this.sampler.shouldSample(parent, traceId, name, kind, attributes, links);
  }
  toString(): string {
    return `WithoutBullmqUpkeep{${this.sampler.toString()}}`;
  }
}

function samplerFor({ parentBased, ratio }: SamplerSettings): Sampler {
  const root =
    ratio >= 1
      ? new AlwaysOnSampler()
      : ratio <= 0
        ? new AlwaysOffSampler()
        : new TraceIdRatioBasedSampler(ratio);
  return new WithoutBullmqUpkeep(parentBased ? new ParentBasedSampler({ root }) : root);
}

function exporterFor(settings: TracingSettings): SpanExporter {
  if (settings.exporter === 'console') return new ConsoleSpanExporter();
  // Endpoint, headers, timeout and compression come from the OTEL_EXPORTER_OTLP_* variables.
  return settings.protocol === 'http/json' ? new OtlpJsonExporter() : new OtlpProtobufExporter();
}

/**
 * Continues the caller's trace when an HTTP request carries a W3C `traceparent`: the operation's
 * span (the next plugin) then has the caller's span as parent.
 */
function useIncomingTraceContext(): Plugin {
  return {
    onExecute({ args }) {
      const headers = (args.contextValue as { request?: Request }).request?.headers;
      const traceparent = headers?.get('traceparent');
      if (!headers || !traceparent) return;
      const tracestate = headers.get('tracestate');
      const carrier = tracestate ? { traceparent, tracestate } : { traceparent };
      setCurrentOtelContext(args.contextValue, propagation.extract(ROOT_CONTEXT, carrier));
    },
  };
}

/** Starts the SDK, puts the task tracer in place, and returns what the process needs of it. */
export function startTracingSdk(settings: TracingSettings, role: string): ActiveTracing {
  const resource = detectResources({ detectors: [envDetector] }).merge(
    resourceFromAttributes({
      'service.name': settings.serviceName,
      'service.instance.id': randomUUID(),
      'process.pid': process.pid,
      'task_status.role': role,
    }),
  );
  const provider = new NodeTracerProvider({
    resource,
    sampler: samplerFor(settings.sampler),
    spanProcessors: [new BatchSpanProcessor(exporterFor(settings))],
  });
  // The AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  const tracer = trace.getTracer(TRACER_NAME);
  useTaskTracer(new OtelTaskTracer(tracer));

  const operations = useOpenTelemetry(
    // No document, variables or result on the span: they may hold user data, and printing the
    // document per operation costs.
    { document: false, variables: false, result: false, resolvers: false },
    provider,
    undefined,
    undefined,
    TRACER_NAME,
  );
  // Subscriptions get the task spans (taskCompleted.subscribe, task.deliver) instead of one span
  // held open for a subscription's whole life.
  const { onSubscribe: _lifelong, ...executions } = operations;
  // Its context type adds the symbol it keeps its span under, which yoga's context does not declare.
  const executionSpans = executions as unknown as Plugin;
  return {
    bullmqTelemetry: new BullMQOtel({ tracerName: TRACER_NAME }),
    graphqlPlugins: [useIncomingTraceContext(), executionSpans, useDeliveryTracing() as Plugin],
    logFields: (): Record<string, string> => {
      const span = trace.getSpan(context.active());
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
    shutdown: () => provider.shutdown(),
  };
}
