/** Command-line options of `npm run bench`. */
import { parseArgs } from 'node:util';
import { E2E_TRANSPORTS, type E2eTransport, SUBSCRIBE_AS, type SubscribeAs } from './protocol.js';

export type SystemName = 'embedded' | 'redis' | 'baseline';

export interface BenchOptions {
  readonly quick: boolean;
  readonly connections: number;
  /** Seconds per rate step. */
  readonly durationS: number;
  /** Fan-out rates (events/s), ramped in order until one is not held. */
  readonly rates: readonly number[];
  /** End-to-end rates (tasks/s), ramped likewise. */
  readonly e2eRates: readonly number[];
  /** `undefined`: both when Redis answers, embedded otherwise. */
  readonly mode: 'embedded' | 'redis' | 'both' | undefined;
  readonly out: string;
  readonly redisUrl: string;
  /** The fan-out baseline (raw ws + ioredis). */
  readonly baseline: boolean;
  /** The end-to-end baseline (plain http -> BullMQ -> worker process -> PUBLISH -> raw ws). */
  readonly e2eBaseline: boolean;
  readonly fanout: boolean;
  readonly e2e: boolean;
  /** How the end-to-end phase starts the service's tasks, each its own ramp. */
  readonly e2eTransports: readonly E2eTransport[];
  /** WORKER_CONCURRENCY of the service, and the end-to-end baseline worker's concurrency. */
  readonly workers: number;
  /** A step is held when its p99 is at most this (ms) and nothing is lost. */
  readonly maxP99Ms: number;
  /**
   * An end-to-end step is sustained (counts for the saturation throughput, and its ramp goes on)
   * when its p99 is at most this: --max-p99 when given, else 1 s.
   */
  readonly saturationP99Ms: number;
  /** Start the service with --cpu-prof and summarise the profile. */
  readonly cpuProf: boolean;
  /** Heap snapshots before and after the connections open, diffed per connection by object kind. */
  readonly heapSnapshot: boolean;
  /** Start the servers with --trace-gc and count GC pauses per step. */
  readonly traceGc: boolean;
  readonly seed: number;
  /** Idle time after the connections are subscribed, before memory is read. */
  readonly settleMs: number;
  /** Longest wait for a step's events after the publisher's last send. */
  readonly drainMs: number;
  /** Longest wait for the server to go idle before a step. */
  readonly quietMs: number;
  /** Seconds of the unreported warm-up step before the fan-out ramp and before each end-to-end ramp. */
  readonly warmupS: number;
  /** Fan-out rates up to this one run even after a step was not held (the ramp's result still ends there). */
  readonly alwaysUpTo: number;
  /** What every connection subscribes with (the SDK's document by hash or text, or the bench's own). */
  readonly subscribeAs: SubscribeAs;
  /** Run the service with OpenTelemetry tracing at this sampling ratio (0–1); null: tracing off. */
  readonly tracing: number | null;
}

export const USAGE = `npm run bench -- [options]

  --quick               1,000 connections, 2 s steps, short ramps (one end-to-end rate per
                        transport): a few minutes
  --connections N       connections (one user each), default 10000
  --duration S          seconds per rate step, default 10
  --rates LIST          fan-out rates per second, default 100,250,500,1000,2000,3000,5000,7500,10000,15000,20000,30000,40000,60000
  --e2e-rates LIST      end-to-end rates in tasks per second, default 100,250,500,1000,1500,2000,3000,5000
  --always-up-to R      fan-out rates up to R run even after a step was not held (for the ratios at 1000/s), default 1000
  --mode M              embedded | redis | both (default both when Redis answers, else embedded)
  --out DIR             report directory, default bench-results
  --redis-url URL       default redis://127.0.0.1:6379 (must be local)
  --no-baseline         skip the fan-out baseline (raw ws + ioredis); the end-to-end baseline still runs
  --no-e2e-baseline     skip the end-to-end baseline (plain http -> BullMQ -> worker -> PUBLISH -> raw ws)
  --no-fanout / --no-e2e  skip a phase
  --e2e-transports LIST how the end-to-end phase starts tasks, each its own ramp: http (startTask over
                        HTTP), ws (startTask over graphql-ws), bulk (startTasks, 100 per call over HTTP);
                        default http,ws,bulk
  --workers N           WORKER_CONCURRENCY of the service and the baseline worker's concurrency, default 32
  --max-p99 MS          p99 above this ends the ramp, default 100 (end to end: default 1000, the
                        saturation limit; the end-to-end "held" rate is always at p99 <= 100 ms)
  --cpu-prof            run the service with --cpu-prof; summary in the report, profiles in DIR/profiles
  --heap-snapshot       heap snapshots before and after the connections (at most 2,000): bytes per connection by kind
  --no-trace-gc         do not count GC pauses (--trace-gc)
  --warmup S            seconds of the unreported warm-up step before the fan-out ramp and before each
                        end-to-end ramp (0: none), default 3 (quick: 0)
  --seed N              user selection seed, default 1
  --subscribe-as S      what each connection subscribes with: bench (the bench's own text), sdk-text
                        (the SDK's TaskCompleted document as text) or sdk-hash (the same document by
                        its trusted-document hash, as the SDK sends it), default bench
  --tracing RATIO       run the service with OpenTelemetry tracing on, sampling RATIO (0 to 1) of the
                        traces (parentbased_traceidratio), exported over OTLP/HTTP to a sink the bench
                        runs; default off`;

function numberList(raw: string, name: string): number[] {
  const values = raw.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((value) => !Number.isFinite(value) || value <= 0)) {
    throw new Error(`${name}: expected positive numbers separated by commas, got ${JSON.stringify(raw)}`);
  }
  return values;
}

function transportList(raw: string): E2eTransport[] {
  const names = raw.split(',').map((part) => part.trim());
  const unknown = names.filter((name) => !(E2E_TRANSPORTS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) {
    throw new Error(
      `--e2e-transports: expected some of ${E2E_TRANSPORTS.join(',')}, got ${JSON.stringify(raw)}`,
    );
  }
  return [...new Set(names)] as E2eTransport[];
}

function tracingRatio(raw: string | undefined): number | null {
  if (raw === undefined) return null;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new Error(`--tracing: expected a sampling ratio from 0 to 1, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function positive(raw: string | undefined, name: string, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || value > max) {
    throw new Error(`${name}: expected a number from 1 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    allowPositionals: false,
    options: {
      quick: { type: 'boolean', default: false },
      connections: { type: 'string' },
      duration: { type: 'string' },
      rates: { type: 'string' },
      'e2e-rates': { type: 'string' },
      mode: { type: 'string' },
      out: { type: 'string', default: 'bench-results' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      'no-baseline': { type: 'boolean', default: false },
      'no-e2e-baseline': { type: 'boolean', default: false },
      'e2e-transports': { type: 'string' },
      'no-fanout': { type: 'boolean', default: false },
      'no-e2e': { type: 'boolean', default: false },
      workers: { type: 'string' },
      'max-p99': { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      'heap-snapshot': { type: 'boolean', default: false },
      'no-trace-gc': { type: 'boolean', default: false },
      seed: { type: 'string' },
      warmup: { type: 'string' },
      'always-up-to': { type: 'string' },
      'subscribe-as': { type: 'string', default: 'bench' },
      tracing: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const mode = values.mode;
  const subscribeAs = values['subscribe-as'] ?? 'bench';
  if (!(SUBSCRIBE_AS as readonly string[]).includes(subscribeAs)) {
    throw new Error(
      `--subscribe-as: expected one of ${SUBSCRIBE_AS.join(', ')}, got ${JSON.stringify(subscribeAs)}`,
    );
  }
  if (mode !== undefined && mode !== 'embedded' && mode !== 'redis' && mode !== 'both') {
    throw new Error(`--mode: expected embedded, redis or both, got ${JSON.stringify(mode)}`);
  }
  const redisUrl = values['redis-url'] ?? 'redis://127.0.0.1:6379';
  const host = new URL(redisUrl).hostname;
  if (host !== '127.0.0.1' && host !== 'localhost') {
    throw new Error(`--redis-url: the bench only talks to 127.0.0.1, got ${host}`);
  }
  const durationS = positive(values.duration, '--duration', quick ? 2 : 10, 3_600);
  const connections = Math.round(
    positive(values.connections, '--connections', quick ? 1_000 : 10_000, 100_000),
  );
  const warmup = values.warmup === undefined ? undefined : Number(values.warmup);
  if (warmup !== undefined && !(Number.isFinite(warmup) && warmup >= 0 && warmup <= 600)) {
    throw new Error(`--warmup: expected 0 to 600 seconds, got ${JSON.stringify(values.warmup)}`);
  }
  return {
    quick,
    connections,
    durationS,
    rates: values.rates
      ? numberList(values.rates, '--rates')
      : quick
        ? [500, 1_000, 2_000]
        : [100, 250, 500, 1_000, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 40_000, 60_000],
    e2eRates: values['e2e-rates']
      ? numberList(values['e2e-rates'], '--e2e-rates')
      : quick
        ? [250]
        : [100, 250, 500, 1_000, 1_500, 2_000, 3_000, 5_000],
    mode,
    out: values.out ?? 'bench-results',
    redisUrl,
    baseline: !values['no-baseline'],
    e2eBaseline: !values['no-e2e-baseline'],
    e2eTransports: values['e2e-transports'] ? transportList(values['e2e-transports']) : E2E_TRANSPORTS,
    fanout: !values['no-fanout'],
    e2e: !values['no-e2e'],
    workers: Math.round(positive(values.workers, '--workers', 32, 1_000)),
    maxP99Ms: positive(values['max-p99'], '--max-p99', 100, 60_000),
    saturationP99Ms: positive(values['max-p99'], '--max-p99', 1_000, 60_000),
    cpuProf: values['cpu-prof'] ?? false,
    heapSnapshot: values['heap-snapshot'] ?? false,
    traceGc: !values['no-trace-gc'],
    seed: Math.round(positive(values.seed, '--seed', 1, 2 ** 31)),
    settleMs: quick || connections <= 1_000 ? 1_000 : 3_000,
    drainMs: quick || durationS <= 3 ? 2_000 : 5_000,
    quietMs: quick ? 1_000 : 15_000,
    warmupS: warmup ?? (quick ? 0 : Math.min(3, durationS)),
    subscribeAs: subscribeAs as SubscribeAs,
    tracing: tracingRatio(values.tracing),
    alwaysUpTo: positive(values['always-up-to'], '--always-up-to', 1_000, 1_000_000),
  };
}
