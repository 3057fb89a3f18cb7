/** The bench report: its JSON shape and the Markdown tables (the latency chart: latency-svg.ts). */
import type { BenchOptions, SystemName } from './options.js';
import type { ProfileSummary } from './profile-summary.js';
import type { FanoutPath } from './protocol.js';
import type { LatencySummary } from './stats.js';

export interface CpuFigures {
  /** % of one core over the step's window. */
  readonly serverPercent: number;
  readonly loadgenPercent: number;
  readonly publisherPercent: number;
  /** The whole Redis server (shared with anything else using it); `null` without Redis. */
  readonly redisPercent: number | null;
  /** Every process of the machine, % of one core (cores × 100 is all of it). */
  readonly machinePercent: number;
  /** Machine minus the processes above: other load on the shared machine. */
  readonly otherPercent: number;
  /** Server CPU per delivered event, µs. */
  readonly serverUsPerEvent: number;
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
  readonly e2ePathDescription: string | null;
  readonly connections: ConnectionReport | null;
  readonly warmup: StepReport | null;
  readonly fanout: readonly StepReport[];
  readonly fanoutHeld: HeldSummary | null;
  readonly e2e: readonly StepReport[];
  readonly e2eHeld: HeldSummary | null;
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

export interface BenchReport {
  readonly version: 1;
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
  readonly notes: readonly string[];
}

const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a === null || a === undefined || b === null || b === undefined || b === 0
    ? null
    : Math.round((a / b) * 100) / 100;

export function computeRatios(systems: readonly SystemReport[]): RatioReport[] {
  const base = systems.find((s) => s.system === 'baseline');
  if (!base) return [];
  return systems
    .filter((s) => s.system !== 'baseline')
    .map((s) => ({
      system: s.system,
      openSubscribe: ratio(
        s.connections?.confirmedMs ?? s.connections?.sentMs,
        base.connections?.confirmedMs ?? base.connections?.sentMs,
      ),
      rssPerConnection: ratio(s.connections?.rssPerConnectionBytes, base.connections?.rssPerConnectionBytes),
      heapPerConnection: ratio(
        s.connections?.heapPerConnectionBytes,
        base.connections?.heapPerConnectionBytes,
      ),
      highestRateHeld: ratio(s.fanoutHeld?.highestRateHeld, base.fanoutHeld?.highestRateHeld),
      perRate: s.fanout.flatMap((step) => {
        const other = base.fanout.find((b) => b.rate === step.rate);
        return other
          ? [
              {
                rate: step.rate,
                p99: ratio(step.latency.p99, other.latency.p99),
                serverUsPerEvent: ratio(step.cpu.serverUsPerEvent, other.cpu.serverUsPerEvent),
              },
            ]
          : [];
      }),
    }));
}

// ---------------------------------------------------------------- Markdown

const fmt = (value: number | null | undefined, decimals = 0) =>
  value === null || value === undefined || !Number.isFinite(value) ? '—' : value.toFixed(decimals);
const kb = (bytes: number | null | undefined) =>
  bytes === null || bytes === undefined ? '—' : `${(bytes / 1024).toFixed(1)} KB`;
const mb = (bytes: number | null | undefined) =>
  bytes === null || bytes === undefined ? '—' : `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const times = (value: number | null | undefined) =>
  value === null || value === undefined ? '—' : `${value.toFixed(2)}×`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
}

function stepRows(steps: readonly StepReport[], base: readonly StepReport[] | null): string[][] {
  return steps.map((step) => {
    const other = base?.find((b) => b.rate === step.rate);
    const row = [
      String(step.rate),
      fmt(step.achievedRate),
      `${step.delivered}/${step.sent}`,
      fmt(step.latency.p50, 1),
      fmt(step.latency.p95, 1),
      fmt(step.latency.p99, 1),
      fmt(step.latency.max, 1),
      `${step.slices.over50ms}/${step.slices.count}`,
      String(step.lost),
      String(step.duplicates),
      `${fmt(step.cpu.serverPercent)}% (${fmt(step.cpu.serverUsPerEvent)} µs/ev)`,
      `${fmt(step.cpu.loadgenPercent)}%`,
      `${fmt(step.cpu.publisherPercent)}%`,
      step.cpu.redisPercent === null ? '—' : `${fmt(step.cpu.redisPercent)}%`,
      `${fmt(step.cpu.otherPercent)}%`,
      step.gc
        ? `${fmt(step.gc.scavengeMs)} ms · ${step.gc.markCompacts} × (${fmt(step.gc.majorPauseMs)} + ${fmt(step.gc.markingMs)} ms), longest ${fmt(step.gc.longestMs)} ms`
        : '—',
      step.held ? 'yes' : `**no**: ${step.failures.join('; ')}`,
    ];
    if (base) {
      row.push(
        other ? times(ratio(step.latency.p99, other.latency.p99)) : '—',
        other ? times(ratio(step.cpu.serverUsPerEvent, other.cpu.serverUsPerEvent)) : '—',
      );
    }
    return row;
  });
}

const STEP_HEADER = [
  'rate/s',
  'achieved/s',
  'delivered/sent',
  'p50 ms',
  'p95 ms',
  'p99 ms',
  'max ms',
  'slow slices',
  'lost',
  'dup',
  'server CPU',
  'loadgen CPU',
  'publisher CPU',
  'redis CPU',
  'other load',
  'GC: scavenge · major × (pause + marking)',
  'held',
];

export function renderMarkdown(report: BenchReport): string {
  const { options, environment: env } = report;
  const base = report.systems.find((s) => s.system === 'baseline') ?? null;
  const out: string[] = [];
  out.push('# Benchmark report', '');
  out.push(
    `${report.startedAt} → ${report.finishedAt}; ${options.connections} connections (one user each), ` +
      `${options.durationS} s per step, held = p99 ≤ ${options.maxP99Ms} ms and nothing lost.`,
    '',
    `Machine: ${env.cpus} × ${env.cpuModel}, ${mb(env.memTotalBytes)}, ${env.platform}, Node ${env.node}` +
      `${env.redisVersion ? `, Redis ${env.redisVersion}` : ''}; load average before ${env.loadAverageBefore.map((v) => v.toFixed(2)).join(' ')}, ` +
      `after ${env.loadAverageAfter.map((v) => v.toFixed(2)).join(' ')} (the machine is shared: see "other load").` +
      `${env.gitRevision ? ` Revision ${env.gitRevision}.` : ''}`,
    '',
    '"slow slices": the receive time is cut into 100 ms slices; n/m = n of the m slices that received events had an event later than 50 ms (a stall shows as a few, saturation as most). ' +
      'CPU figures are % of one core over the step window (server, load generator, publisher, the whole Redis ' +
      'server, and "other": every other process of the machine). µs/ev = server CPU per delivered event.',
    '',
  );

  out.push('## Summary', '');
  out.push(
    table(
      [
        'system',
        'open+subscribe',
        'RSS/conn',
        'heap/conn',
        'fan-out held (events/s)',
        'fan-out ended by',
        'end-to-end held (tasks/s)',
        'end-to-end ended by',
      ],
      report.systems.map((s) => [
        s.label,
        s.connections ? `${fmt(s.connections.confirmedMs ?? s.connections.sentMs)} ms` : '—',
        kb(s.connections?.rssPerConnectionBytes),
        kb(s.connections?.heapPerConnectionBytes),
        s.fanoutHeld ? String(s.fanoutHeld.highestRateHeld) : '—',
        s.fanoutHeld ? `${s.fanoutHeld.endedBy} — bottleneck: ${s.fanoutHeld.bottleneck}` : '—',
        s.e2eHeld ? String(s.e2eHeld.highestRateHeld) : '—',
        s.e2eHeld ? `${s.e2eHeld.endedBy} — bottleneck: ${s.e2eHeld.bottleneck}` : '—',
      ]),
    ),
    '',
  );

  if (report.ratios.length > 0) {
    out.push('## Ratios to the baseline (service ÷ baseline)', '');
    const rates = [...new Set(report.ratios.flatMap((r) => r.perRate.map((p) => p.rate)))].sort(
      (a, b) => a - b,
    );
    out.push(
      table(
        [
          'system',
          'open+subscribe',
          'RSS/conn',
          'heap/conn',
          'highest fan-out rate held',
          ...rates.map((rate) => `p99 @${rate}/s`),
          ...rates.map((rate) => `CPU/ev @${rate}/s`),
        ],
        report.ratios.map((r) => [
          r.system,
          times(r.openSubscribe),
          times(r.rssPerConnection),
          times(r.heapPerConnection),
          times(r.highestRateHeld),
          ...rates.map((rate) => times(r.perRate.find((p) => p.rate === rate)?.p99)),
          ...rates.map((rate) => times(r.perRate.find((p) => p.rate === rate)?.serverUsPerEvent)),
        ]),
      ),
      '',
    );
  }

  out.push('## Connections', '');
  out.push(
    table(
      [
        'system',
        'subscribed/requested',
        'acks+subscribes sent',
        'confirmed by server',
        'server CPU',
        'loadgen CPU',
        'RSS before → after',
        'RSS/conn',
        'heap before → after',
        'heap/conn',
      ],
      report.systems.map((s) => {
        const c = s.connections;
        if (!c) return [s.label, '—', '—', '—', '—', '—', '—', '—', '—', '—'];
        return [
          s.label,
          `${c.subscribed}/${c.requested}${c.failed > 0 ? ` (${c.failed} failed)` : ''}`,
          `${fmt(c.sentMs)} ms`,
          c.confirmedMs === null ? '—' : `${fmt(c.confirmedMs)} ms (${c.confirmedBy})`,
          `${fmt(c.serverCpuMs)} ms`,
          `${fmt(c.loadgenCpuMs)} ms`,
          `${mb(c.rssBeforeBytes)} → ${mb(c.rssAfterBytes)}`,
          kb(c.rssPerConnectionBytes),
          `${mb(c.heapBeforeBytes)} → ${mb(c.heapAfterBytes)}`,
          `${kb(c.heapPerConnectionBytes)} (${c.heapSource})`,
        ];
      }),
    ),
    '',
  );

  for (const s of report.systems) {
    out.push(`## ${s.label}`, '');
    out.push(`- fan-out path: ${s.fanoutPathDescription}`);
    if (s.e2ePathDescription) out.push(`- end-to-end path: ${s.e2ePathDescription}`);
    if (s.error) out.push(`- **error**: ${s.error}`);
    if (s.loadgen) {
      out.push(
        `- load generator: ${s.loadgen.dropped} connections dropped during the run` +
          `${Object.keys(s.loadgen.closeCodes).length > 0 ? ` (close codes ${JSON.stringify(s.loadgen.closeCodes)})` : ''}, ` +
          `${s.loadgen.late} events after their step was collected, ${s.loadgen.errorFrames} error frames` +
          `${s.loadgen.firstErrorFrame ? ` (first: \`${s.loadgen.firstErrorFrame.slice(0, 160)}\`)` : ''}`,
      );
    }
    out.push('');
    const withBase = s.system !== 'baseline' && base ? base.fanout : null;
    const header = withBase ? [...STEP_HEADER, 'p99 ×base', 'CPU/ev ×base'] : STEP_HEADER;
    if (s.fanout.length > 0) {
      out.push('### Fan-out', '', table(header, stepRows(s.fanout, withBase)), '');
      if (s.fanoutHeld) {
        out.push(
          `Highest rate held: **${s.fanoutHeld.highestRateHeld}/s**; ${s.fanoutHeld.endedBy}; bottleneck: ${s.fanoutHeld.bottleneck}.`,
          '',
        );
      }
    }
    if (s.e2e.length > 0) {
      out.push(
        '### End to end (startTask echo → completion on the socket)',
        '',
        table(STEP_HEADER, stepRows(s.e2e, null)),
        '',
      );
      if (s.e2eHeld) {
        out.push(
          `Highest rate held: **${s.e2eHeld.highestRateHeld} tasks/s**; ${s.e2eHeld.endedBy}; bottleneck: ${s.e2eHeld.bottleneck}.`,
          '',
        );
      }
    }
    if (s.heapPerConnectionByKind) {
      const total = s.heapPerConnectionByKind.reduce((sum, k) => sum + k.bytesPerConnection, 0);
      out.push(
        '### Heap per connection by kind (heap snapshots before and after the connections)',
        '',
        `The kinds below add up to ${fmt(total)} B per connection (all kinds: see report.json).`,
        '',
        table(
          ['bytes/conn', 'objects/conn', 'kind'],
          s.heapPerConnectionByKind
            .slice(0, 30)
            .map((k) => [fmt(k.bytesPerConnection), fmt(k.objectsPerConnection, 1), `\`${k.kind}\``]),
        ),
        '',
      );
    }
    for (const { scope, summary: profile } of s.profiles) {
      out.push(
        `### CPU profile of the server: ${scope}`,
        '',
        `\`${profile.file}\`: ${profile.durationMs} ms profiled, ${profile.busyMs} ms busy (not idle); shares below are of the busy time.`,
        '',
        table(
          ['self %', 'self ms', 'function'],
          profile.topSelf.map((e) => [e.percent.toFixed(1), e.ms.toFixed(0), `\`${e.name}\``]),
        ),
        '',
        table(
          ['inclusive %', 'ms', 'function'],
          profile.topInclusive.map((e) => [e.percent.toFixed(1), e.ms.toFixed(0), `\`${e.name}\``]),
        ),
        '',
        table(
          ['self %', 'ms', 'package'],
          profile.byPackage.map((e) => [e.percent.toFixed(1), e.ms.toFixed(0), e.name]),
        ),
        '',
      );
    }
  }

  if (report.notes.length > 0) {
    out.push('## Notes', '', ...report.notes.map((note) => `- ${note}`), '');
  }
  return out.join('\n');
}
