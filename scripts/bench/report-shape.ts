/** The bench report's JSON shape (report.json): per system, its connections, steps and ramps. */
import type { BenchOptions, SystemName } from './options.js';
import type { ProfileSummary } from './profile-summary.js';
import type { E2eTransport, FanoutPath } from './protocol.js';
import type { LatencySummary } from './stats.js';

export interface CpuFigures {
  /** % of one core over the step's window. */
  readonly serverPercent: number;
  readonly loadgenPercent: number;
  readonly publisherPercent: number;
  /** The whole Redis server (shared with anything else using it); `null` without Redis. */
  readonly redisPercent: number | null;
  /** The end-to-end baseline's worker process; `null` for the others (the service runs its workers itself). */
  readonly workerPercent: number | null;
  /** Every process of the machine, % of one core (cores × 100 is all of it). */
  readonly machinePercent: number;
  /** Machine minus the processes above: other load on the shared machine. */
  readonly otherPercent: number;
  /** Server CPU per delivered event, µs. */
  readonly serverUsPerEvent: number;
  /**
   * CPU of every process of the system under test per delivered event (task), µs: the server, the
   * baseline's worker process, and Redis for the systems that use it (baseline, Redis mode).
   */
  readonly systemUsPerEvent: number;
  /** Redis's part of {@link systemUsPerEvent}; `null` without Redis. */
  readonly redisUsPerEvent: number | null;
}

/** GC work of the server's main thread during a step window, from --trace-gc. */
export interface GcFigures {
  readonly scavenges: number;
  readonly scavengeMs: number;
  /** Major GCs (mark-compact) finished in the window. */
  readonly markCompacts: number;
  /** Their atomic pauses, summed. */
  readonly majorPauseMs: number;
  /** Incremental marking done for them, interleaved with JavaScript. */
  readonly markingMs: number;
  /** The longest single major pause or marking step. */
  readonly longestMs: number;
}

export interface StepReport {
  readonly phase: 'warmup' | 'fanout' | 'e2e';
  readonly step: number;
  readonly rate: number;
  readonly durationS: number;
  /** Events (fan-out) or tasks (e2e) the step should send. */
  readonly target: number;
  readonly sent: number;
  readonly notIssued: number;
  readonly publishErrors: number;
  readonly firstPublishError: string | null;
  readonly achievedRate: number;
  /** Distinct events received. */
  readonly delivered: number;
  /** Delivered per second of the step's window. */
  readonly deliveredRate: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly misrouted: number;
  readonly latency: LatencySummary;
  /** See StepReceipt.slices. */
  readonly slices: { sliceMs: number; count: number; over10ms: number; over50ms: number };
  /** From the first send to the last event received (or the drain timeout). */
  readonly windowMs: number;
  /** Preparation (tasks created before the window), ms; 0 when none. */
  readonly prepareMs: number;
  readonly cpu: CpuFigures;
  readonly gc: GcFigures | null;
  readonly serverRssBytes: number | null;
  readonly held: boolean;
  readonly failures: readonly string[];
  /** The process that ran out of CPU, if one did (or why none is named). */
  readonly bottleneck: string;
}

export interface ConnectionReport {
  readonly requested: number;
  readonly subscribed: number;
  readonly failed: number;
  readonly firstError: string | null;
  /** From the first connect until every connection_ack came back and every subscribe was sent. */
  readonly sentMs: number;
  /** Until the server reported every subscription in effect; `null` when it cannot tell. */
  readonly confirmedMs: number | null;
  readonly confirmedBy: string;
  readonly serverCpuMs: number;
  readonly loadgenCpuMs: number;
  readonly rssBeforeBytes: number | null;
  readonly rssAfterBytes: number | null;
  readonly rssPerConnectionBytes: number | null;
  readonly heapBeforeBytes: number | null;
  readonly heapAfterBytes: number | null;
  readonly heapPerConnectionBytes: number | null;
  readonly heapSource: string;
}

/** An end-to-end ramp: tasks started over one transport, completions received on the sockets. */
export interface E2eRun {
  /** The service's transport; `baseline` for the baseline's plain `POST /tasks`. */
  readonly transport: E2eTransport | 'baseline';
  readonly description: string;
  /** The unreported warm-up step before the ramp (--warmup); `null` with --warmup 0. */
  readonly warmup: StepReport | null;
  /** `held` on these steps means sustained: see {@link E2eFigures}. */
  readonly steps: readonly StepReport[];
  readonly held: HeldSummary;
  readonly figures: E2eFigures;
}

export interface E2eFigures {
  /**
   * Saturation throughput: the highest offered rate (tasks/s) whose step was sustained — achieved
   * rate ≥ 98 % of offered, nothing lost, duplicated or refused, p99 ≤ `saturationP99Ms`; 0 when none.
   */
  readonly saturationTasksPerS: number;
  readonly saturationP99Ms: number;
  /** The last rate of the ramp was sustained: the saturation is at least that (the ramp ended, not the system). */
  readonly saturationIsRampEnd: boolean;
  /** The highest offered rate sustained with p99 ≤ 100 ms; 0 when none. */
  readonly heldAt100MsTasksPerS: number;
}

export interface HeldSummary {
  /** Highest rate of the ramp held before the first step that was not; 0 when none was. */
  readonly highestRateHeld: number;
  /** The first step not held, and why. */
  readonly endedBy: string;
  readonly bottleneck: string;
}

export interface SystemReport {
  readonly system: SystemName;
  readonly label: string;
  readonly fanoutPath: FanoutPath;
  readonly fanoutPathDescription: string;
  readonly connections: ConnectionReport | null;
  readonly warmup: StepReport | null;
  readonly fanout: readonly StepReport[];
  readonly fanoutHeld: HeldSummary | null;
  /** One ramp per transport (the baseline: one, through its `POST /tasks`). */
  readonly e2e: readonly E2eRun[];
  readonly loadgen: {
    readonly dropped: number;
    readonly closeCodes: Record<string, number>;
    readonly late: number;
    readonly errorFrames: number;
    readonly completeFrames: number;
    readonly firstErrorFrame: string | null;
  } | null;
  readonly profiles: readonly ScopedProfile[];
  /** With --heap-snapshot: what each connection adds to the heap, by object kind, largest first. */
  readonly heapPerConnectionByKind: readonly HeapKindPerConnection[] | null;
  readonly error: string | null;
}

export interface HeapKindPerConnection {
  /** Constructor name, `(closure) name`, or a V8 node type such as `(string)` or `(array)`. */
  readonly kind: string;
  readonly objectsPerConnection: number;
  readonly bytesPerConnection: number;
}

/** A CPU profile summary over the server's whole life or only over the windows of one phase. */
export interface ScopedProfile {
  readonly scope: string;
  readonly summary: ProfileSummary;
}

export interface RatioReport {
  readonly system: SystemName;
  readonly openSubscribe: number | null;
  readonly rssPerConnection: number | null;
  readonly heapPerConnection: number | null;
  readonly highestRateHeld: number | null;
  /** Per fan-out rate both systems ran: p99 and server µs/event, service over baseline. */
  readonly perRate: readonly { rate: number; p99: number | null; serverUsPerEvent: number | null }[];
}

/** One end-to-end ramp of the service against the baseline's (service ÷ baseline). */
export interface E2eRatioReport {
  readonly system: SystemName;
  readonly transport: E2eTransport;
  /** Per rate both ran: CPU per task of the whole system and of Redis alone, and p99. */
  readonly perRate: readonly {
    rate: number;
    cpuPerTask: number | null;
    redisCpuPerTask: number | null;
    p99: number | null;
  }[];
  readonly saturation: number | null;
  readonly heldAt100Ms: number | null;
}

/** Bulk `startTasks` against single `startTask` calls over HTTP, on one system. */
export interface BulkComparison {
  readonly system: SystemName;
  readonly bulkTasksPerS: number;
  readonly singleTasksPerS: number;
  /** bulk ÷ single saturation; `null` when single reached none. */
  readonly ratio: number | null;
}

export interface BenchReport {
  readonly version: 2;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly options: BenchOptions;
  readonly environment: {
    readonly node: string;
    readonly platform: string;
    readonly cpus: number;
    readonly cpuModel: string;
    readonly memTotalBytes: number;
    readonly loadAverageBefore: readonly number[];
    readonly loadAverageAfter: readonly number[];
    readonly fdHardLimit: number;
    readonly redisVersion: string | null;
    readonly gitRevision: string | null;
  };
  readonly systems: readonly SystemReport[];
  readonly ratios: readonly RatioReport[];
  readonly e2eRatios: readonly E2eRatioReport[];
  readonly bulkVsSingle: readonly BulkComparison[];
  readonly notes: readonly string[];
}
