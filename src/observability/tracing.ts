/**
 * Tracing on or off, from the standard OpenTelemetry variables. Off (the default) loads nothing:
 * the SDK, the exporter and the spans' code are imported only when a variable asks for traces, so
 * a process without them runs exactly the code it ran before tracing existed.
 */
import type { Telemetry } from 'bullmq';
import type { Plugin } from 'graphql-yoga';
import { ConfigError, type Env } from '../env-values.js';
import { NO_TRACING, useTaskTracer } from '../tasks/task-tracing.js';

/** How spans are sampled (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`). */
export interface SamplerSettings {
  /** A span with a parent follows its parent's decision (the `parentbased_*` samplers). */
  readonly parentBased: boolean;
  /** Share of root spans sampled, from 0 to 1. */
  readonly ratio: number;
}

/** What the `OTEL_*` variables ask for, checked. */
export interface TracingSettings {
  readonly exporter: 'otlp' | 'console';
  /** `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`. @default 'http/protobuf' */
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly sampler: SamplerSettings;
  /** `OTEL_SERVICE_NAME`. @default 'task-status-service' */
  readonly serviceName: string;
}

const SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

const blank = (value: string | undefined) => value === undefined || value.trim() === '';

/** `OTEL_TRACES_SAMPLER` and its argument; the spec's default is `parentbased_always_on`. */
function readSampler(env: Env): SamplerSettings {
  const name = env['OTEL_TRACES_SAMPLER']?.trim().toLowerCase() || 'parentbased_always_on';
  if (!(SAMPLERS as readonly string[]).includes(name)) {
    throw new ConfigError(
      'OTEL_TRACES_SAMPLER',
      `expected one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(env['OTEL_TRACES_SAMPLER'])}`,
    );
  }
  const parentBased = name.startsWith('parentbased_');
  if (name.endsWith('always_on')) return { parentBased, ratio: 1 };
  if (name.endsWith('always_off')) return { parentBased, ratio: 0 };
  const raw = env['OTEL_TRACES_SAMPLER_ARG']?.trim();
  if (raw === undefined || raw === '') return { parentBased, ratio: 1 };
  const ratio = Number(raw);
  if (!/^\d*\.?\d+$/.test(raw) || !(ratio >= 0 && ratio <= 1)) {
    throw new ConfigError(
      'OTEL_TRACES_SAMPLER_ARG',
      `expected a ratio from 0 to 1 for ${name}, got ${JSON.stringify(env['OTEL_TRACES_SAMPLER_ARG'])}`,
    );
  }
  return { parentBased, ratio };
}

/**
 * The tracing the environment asks for, or `null` (off). On when `OTEL_EXPORTER_OTLP_ENDPOINT`
 * or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set, or `OTEL_TRACES_EXPORTER` names `otlp` or
 * `console`; off when `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. Throws
 * {@link ConfigError} for a value it cannot use, so start-up stops with the variable's name.
 */
export function readTracingSettings(env: Env): TracingSettings | null {
  if (env['OTEL_SDK_DISABLED']?.trim().toLowerCase() === 'true') return null;
  const named = env['OTEL_TRACES_EXPORTER']?.trim().toLowerCase();
  if (named !== undefined && named !== '' && !['otlp', 'console', 'none'].includes(named)) {
    throw new ConfigError(
      'OTEL_TRACES_EXPORTER',
      `expected otlp, console or none, got ${JSON.stringify(env['OTEL_TRACES_EXPORTER'])}`,
    );
  }
  if (named === 'none') return null;
  const endpoint =
    !blank(env['OTEL_EXPORTER_OTLP_ENDPOINT']) || !blank(env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT']);
  if (!endpoint && (named === undefined || named === '')) return null;
  const protocolVariable = blank(env['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'])
    ? 'OTEL_EXPORTER_OTLP_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL';
  const protocol = env[protocolVariable]?.trim().toLowerCase() || 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    throw new ConfigError(
      protocolVariable,
      `expected http/protobuf or http/json (grpc is not supported), got ${JSON.stringify(env[protocolVariable])}`,
    );
  }
  return {
    exporter: named === 'console' ? 'console' : 'otlp',
    protocol,
    sampler: readSampler(env),
    serviceName: env['OTEL_SERVICE_NAME']?.trim() || 'task-status-service',
  };
}

/** Tracing while it runs in this process. */
export interface ActiveTracing {
  /** The envelop plugins that trace GraphQL operations and deliveries. */
  readonly graphqlPlugins: readonly Plugin[];
  /** BullMQ's `telemetry` option (bullmq-otel): spans for adding and processing jobs. */
  readonly bullmqTelemetry: Telemetry;
  /** Fields each log line gets: the active span's `trace_id` and `span_id`. */
  readonly logFields: () => Record<string, string>;
  /** Exports the spans still buffered and stops (on drain). */
  shutdown(): Promise<void>;
}

let active: ActiveTracing | null = null;

/**
 * Starts tracing when {@link readTracingSettings} says so, for a process of `role` (`gateway` or
 * `worker`, a resource attribute); `null` when tracing is off. Throws {@link ConfigError} for a
 * bad `OTEL_*` value.
 */
export async function startTracing(role: string, env: Env = process.env): Promise<ActiveTracing | null> {
  const settings = readTracingSettings(env);
  if (!settings) return null;
  const { startTracingSdk } = await import('./tracing-sdk.js');
  const started = startTracingSdk(settings, role);
  active = {
    ...started,
    shutdown: async () => {
      useTaskTracer(NO_TRACING);
      active = null;
      await started.shutdown();
    },
  };
  return active;
}

/** The GraphQL tracing plugins while tracing is on; none when it is off. */
export function graphqlTracingPlugins(): readonly Plugin[] {
  return active?.graphqlPlugins ?? [];
}

/** BullMQ's `telemetry` option while tracing is on: `{ telemetry }`, else `{}` (no option at all). */
export function bullmqTelemetryOption(): { telemetry?: Telemetry } {
  return active ? { telemetry: active.bullmqTelemetry } : {};
}
