/**
 * One measured step (a rate held for a few seconds) and the ramps made of them: the publisher sends,
 * the load generator receives, and the step's CPU, GC, latency and losses become a StepReport.
 */
import os from 'node:os';
import type { Redis } from 'ioredis';
import { E2E_RATE_TOLERANCE, e2eFigures } from './e2e-summary.js';
import type { GcCounter } from './gc-counter.js';
import { log } from './log.js';
import type { BenchOptions, SystemName } from './options.js';
import type {
  E2eTransport,
  FanoutPath,
  LoadGenApi,
  PublisherApi,
  RunResult,
  StepReceipt,
} from './protocol.js';
import { redisCpuMs } from './redis-admin.js';
import type { CpuFigures, E2eFigures, HeldSummary, StepReport } from './report-shape.js';
import type { RpcClient } from './rpc.js';
import { round } from './stats.js';
import { machineCpu, monotonicUs, nowMs, pollUntil, processCpuMs, processRssBytes } from './sys.js';

/** Tasks per second the publisher creates while preparing a fan-out step. */
const PREPARE_RATE = 8_000;
/** A fan-out step counts as sent at its rate when the publisher issued at least this share of it. */
const RATE_TOLERANCE = 0.95;
/** CPU share of one core above which a process is named the bottleneck. */
const SATURATED_PERCENT = 85;

/** What a step needs of the system under test and of the bench's own processes. */
export interface StepContext {
  readonly system: SystemName;
  readonly options: BenchOptions;
  readonly fanoutPath: FanoutPath;
  readonly lg: RpcClient<LoadGenApi>;
  readonly pub: RpcClient<PublisherApi>;
  readonly serverPid: number;
  /** The end-to-end baseline's worker process, counted with the system under test. */
  readonly workerPid: number | null;
  readonly publisherPid: number;
  /** `null` when the system runs without Redis. */
  readonly redis: Redis | null;
  readonly gc: GcCounter;
  /** Monotonic µs intervals of the measured step windows, to cut the CPU profile to them. */
  readonly windows: { readonly fanout: [number, number][]; readonly e2e: [number, number][] };
  /** Whether the server is gone (a ramp stops then). */
  serverExited(): boolean;
}

interface CpuSnapshot {
  readonly at: number;
  readonly server: number;
  readonly worker: number | null;
  readonly loadgen: number;
  readonly publisher: number;
  readonly redis: number | null;
  readonly machine: ReturnType<typeof machineCpu>;
}

/** Runs the steps of one system, numbering them. */
export class StepRunner {
  readonly #ctx: StepContext;
  #stepNo = 0;

  constructor(ctx: StepContext) {
    this.#ctx = ctx;
  }

  async #snapshot(): Promise<CpuSnapshot> {
    const { serverPid, workerPid, publisherPid, lg, redis } = this.#ctx;
    return {
      at: nowMs(),
      server: processCpuMs(serverPid) ?? 0,
      worker: workerPid === null ? null : (processCpuMs(workerPid) ?? 0),
      loadgen: (await lg.call('cpu', null)).cpuMs,
      publisher: processCpuMs(publisherPid) ?? 0,
      redis: await redisCpuMs(redis).catch(() => null),
      machine: machineCpu(),
    };
  }

  /** Waits until the server has been nearly idle for a poll interval (or `quietMs` passed). */
  async #quiet(): Promise<void> {
    const { serverPid, options } = this.#ctx;
    let last = processCpuMs(serverPid) ?? 0;
    await pollUntil(
      () => {
        const now = processCpuMs(serverPid) ?? 0;
        const busy = now - last;
        last = now;
        return busy < 250 * 0.2;
      },
      options.quietMs,
      250,
    );
  }

  /**
   * One step at `rate` for `durationS` seconds. It is held when nothing is lost, duplicated or
   * refused, the publisher kept its rate, and p99 ≤ --max-p99; an end-to-end step (one with a
   * `transport`, warm-up or not) is held when sustained: issued at ≥ 98 % of the rate, p99 ≤ the
   * saturation limit.
   */
  async run(
    phase: StepReport['phase'],
    rate: number,
    durationS: number,
    transport: E2eTransport | null = null,
  ): Promise<StepReport> {
    const { system, options, fanoutPath, lg, pub, gc, serverPid } = this.#ctx;
    // A warm-up step with a transport warms the end-to-end path.
    const e2e = transport !== null;
    const maxP99Ms = e2e ? options.saturationP99Ms : options.maxP99Ms;
    const rateTolerance = e2e ? E2E_RATE_TOLERANCE : RATE_TOLERANCE;
    const step = ++this.#stepNo;
    let prepareMs = 0;
    if (!e2e && fanoutPath !== 'publish') {
      const count = Math.max(1, Math.round(rate * durationS));
      const prepared = await pub.call('prepare', { count, maxRate: PREPARE_RATE }, 600_000);
      prepareMs = Math.round(prepared.ms);
      if (prepared.errors > 0)
        log(`${system}: prepare: ${prepared.errors} errors, first: ${prepared.firstError}`);
    }
    await this.#quiet();
    const gcBefore = gc.mark();
    const before = await this.#snapshot();
    const windowStart = monotonicUs();
    const result: RunResult = await pub.call(
      'run',
      {
        step,
        kind: e2e ? 'e2e' : 'fanout',
        transport,
        rate,
        durationS,
        maxInFlight: fanoutPath === 'api' || e2e ? 256 : 2_000,
      },
      durationS * 2_000 + 120_000,
    );
    // Events not in by the drain time count as lost (their latency would fail the step anyway).
    await pollUntil(
      async () => (await lg.call('progress', { step })).unique >= result.sent,
      e2e ? options.drainMs * 2 : options.drainMs,
      20,
    );
    const after = await this.#snapshot();
    if (phase !== 'warmup') this.#ctx.windows[phase].push([windowStart, monotonicUs()]);
    const gcAfter = gc.mark();
    const receipt: StepReceipt = await lg.call('collect', { step });
    const windowMs = after.at - before.at;
    const pct = (ms: number) => round((ms / windowMs) * 100, 1);
    const serverMs = after.server - before.server;
    const loadgenMs = after.loadgen - before.loadgen;
    const publisherMs = after.publisher - before.publisher;
    const redisMs = before.redis === null || after.redis === null ? null : after.redis - before.redis;
    const workerMs = before.worker === null || after.worker === null ? null : after.worker - before.worker;
    const machineMs = after.machine.busyMs - before.machine.busyMs;
    const systemMs = serverMs + (workerMs ?? 0) + (redisMs ?? 0);
    const perEvent = (ms: number) => (receipt.unique > 0 ? round((ms * 1000) / receipt.unique, 1) : 0);
    const cpu: CpuFigures = {
      serverPercent: pct(serverMs),
      loadgenPercent: pct(loadgenMs),
      publisherPercent: pct(publisherMs),
      redisPercent: redisMs === null ? null : pct(redisMs),
      workerPercent: workerMs === null ? null : pct(workerMs),
      machinePercent: pct(machineMs),
      otherPercent: pct(Math.max(0, machineMs - systemMs - loadgenMs - publisherMs)),
      serverUsPerEvent: perEvent(serverMs),
      systemUsPerEvent: perEvent(systemMs),
      redisUsPerEvent: redisMs === null ? null : perEvent(redisMs),
    };
    const lost = Math.max(0, result.sent - receipt.unique);
    const failures: string[] = [];
    if (lost > 0) failures.push(`${lost} lost`);
    if (receipt.duplicates > 0) failures.push(`${receipt.duplicates} duplicates`);
    if (receipt.misrouted > 0) failures.push(`${receipt.misrouted} misrouted`);
    if (receipt.latency.p99 > maxP99Ms) failures.push(`p99 ${receipt.latency.p99} ms`);
    if (result.errors > 0) failures.push(`${result.errors} send errors (${result.firstError ?? ''})`);
    if (result.notIssued > 0 || result.achievedRate < rate * rateTolerance) {
      failures.push(`publisher reached ${Math.round(result.achievedRate)}/s`);
    }
    const stepReport: StepReport = {
      phase,
      step,
      rate,
      durationS,
      target: result.target,
      sent: result.sent,
      notIssued: result.notIssued,
      publishErrors: result.errors,
      firstPublishError: result.firstError,
      achievedRate: Math.round(result.achievedRate),
      delivered: receipt.unique,
      deliveredRate: Math.round((receipt.unique * 1000) / windowMs),
      lost,
      duplicates: receipt.duplicates,
      misrouted: receipt.misrouted,
      latency: receipt.latency,
      slices: receipt.slices,
      windowMs: Math.round(windowMs),
      prepareMs,
      cpu,
      gc: options.traceGc
        ? {
            scavenges: gcAfter.scavenges - gcBefore.scavenges,
            scavengeMs: round(gcAfter.scavengeMs - gcBefore.scavengeMs, 1),
            markCompacts: gcAfter.markCompacts - gcBefore.markCompacts,
            majorPauseMs: round(gcAfter.majorPauseMs - gcBefore.majorPauseMs, 1),
            markingMs: round(gcAfter.markingMs - gcBefore.markingMs, 1),
            longestMs: round(gcAfter.longestMs, 1),
          }
        : null,
      serverRssBytes: processRssBytes(serverPid),
      held: failures.length === 0,
      failures,
      bottleneck: '',
    };
    const named = { ...stepReport, bottleneck: nameBottleneck(stepReport, system) };
    log(
      `${system} ${phase}${transport ? ` ${transport}` : ''} ${rate}/s: ${receipt.unique}/${result.sent} delivered, p50 ${receipt.latency.p50} p99 ${receipt.latency.p99} max ${receipt.latency.max} ms, ` +
        `server ${cpu.serverPercent}% (${cpu.serverUsPerEvent} µs/ev)` +
        `${cpu.workerPercent === null ? '' : `, worker ${cpu.workerPercent}%`}, system ${cpu.systemUsPerEvent} µs/ev, loadgen ${cpu.loadgenPercent}%, publisher ${cpu.publisherPercent}%` +
        `${cpu.redisPercent === null ? '' : `, redis ${cpu.redisPercent}%`}, other ${cpu.otherPercent}%` +
        `${named.held ? '' : ` — NOT HELD: ${failures.join('; ')}`}`,
    );
    return named;
  }

  /** Fan-out steps at `rates` in order until one is not held (those up to --always-up-to run regardless). */
  async rampFanout(rates: readonly number[]): Promise<{ steps: StepReport[]; held: HeldSummary }> {
    const { options } = this.#ctx;
    const steps: StepReport[] = [];
    let failed = false;
    for (const rate of rates) {
      if (failed && rate > options.alwaysUpTo) break;
      if (this.#ctx.serverExited()) break;
      const step = await this.run('fanout', rate, options.durationS);
      steps.push(step);
      failed ||= !step.held;
    }
    return { steps, held: summarizeHeld(steps, rates) };
  }

  /**
   * End-to-end steps over `transport` at `rates` in order until one is not sustained, after an
   * unreported warm-up step (--warmup) at the first rate (at most 250/s), so that the first rate is
   * not measured on cold code and fresh connections.
   */
  async rampE2e(
    rates: readonly number[],
    transport: E2eTransport,
  ): Promise<{ warmup: StepReport | null; steps: StepReport[]; held: HeldSummary; figures: E2eFigures }> {
    const { options } = this.#ctx;
    const warmup =
      options.warmupS > 0
        ? await this.run('warmup', Math.min(rates[0] ?? 100, 250), options.warmupS, transport)
        : null;
    const steps: StepReport[] = [];
    for (const rate of rates) {
      if (this.#ctx.serverExited()) break;
      const step = await this.run('e2e', rate, options.durationS, transport);
      steps.push(step);
      if (!step.held) break;
    }
    return {
      warmup,
      steps,
      held: summarizeHeld(steps, rates),
      figures: e2eFigures(steps, rates, options.saturationP99Ms),
    };
  }
}

/** Names the process whose CPU ran out during `step`, or says that none did. */
function nameBottleneck(step: StepReport, system: SystemName): string {
  const { cpu } = step;
  const processes: [string, number][] = [
    [system === 'baseline' ? 'baseline server' : `service (${system})`, cpu.serverPercent],
    ['load generator', cpu.loadgenPercent],
    ['publisher', cpu.publisherPercent],
    ...(cpu.workerPercent === null ? [] : ([['baseline worker', cpu.workerPercent]] as [string, number][])),
    ...(cpu.redisPercent === null ? [] : ([['Redis', cpu.redisPercent]] as [string, number][])),
  ];
  processes.sort((a, b) => b[1] - a[1]);
  const [top] = processes;
  const cores = os.cpus().length;
  if (top && top[1] >= SATURATED_PERCENT) return `${top[0]} CPU (${top[1]}% of a core)`;
  if (cpu.machinePercent >= cores * 100 * 0.9) {
    return `machine CPU (${cpu.machinePercent}% of ${cores * 100}%; other processes ${cpu.otherPercent}%)`;
  }
  return `no process saturated (busiest: ${top?.[0] ?? '—'} ${top?.[1] ?? 0}%; machine ${cpu.machinePercent}% of ${cores * 100}%)`;
}

function summarizeHeld(steps: readonly StepReport[], rates: readonly number[]): HeldSummary {
  let highest = 0;
  for (const step of steps) {
    if (!step.held) break;
    highest = step.rate;
  }
  const failed = steps.find((step) => !step.held);
  const last = steps.at(-1);
  return {
    highestRateHeld: highest,
    endedBy: failed
      ? `${failed.rate}/s not held (${failed.failures.join('; ')})`
      : `every rate up to ${rates.at(-1) ?? 0}/s held (the ramp ended, not the system)`,
    bottleneck: failed?.bottleneck ?? last?.bottleneck ?? '—',
  };
}
