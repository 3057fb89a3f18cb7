/** The bench report: its JSON shape, the Markdown tables and the latency chart (SVG, by hand). */
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

// ---------------------------------------------------------------- SVG chart

const COLORS: Record<string, string> = {
  'embedded fan-out': '#1f77b4',
  'redis fan-out': '#d62728',
  'baseline fan-out': '#2ca02c',
  'embedded end-to-end': '#6baed6',
  'redis end-to-end': '#fc9272',
};

const escapeXml = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** p99 latency against rate, log-log, one line per system and phase, the held threshold dashed. */
export function renderLatencySvg(report: BenchReport): string {
  const series: { name: string; points: { rate: number; p99: number; held: boolean }[]; dashed: boolean }[] =
    [];
  for (const s of report.systems) {
    const fan = s.fanout.filter((step) => step.latency.count > 0);
    if (fan.length > 0) {
      series.push({
        name: `${s.system} fan-out`,
        points: fan.map((st) => ({ rate: st.rate, p99: st.latency.p99, held: st.held })),
        dashed: false,
      });
    }
    const e2e = s.e2e.filter((step) => step.latency.count > 0);
    if (e2e.length > 0) {
      series.push({
        name: `${s.system} end-to-end`,
        points: e2e.map((st) => ({ rate: st.rate, p99: st.latency.p99, held: st.held })),
        dashed: true,
      });
    }
  }
  const width = 820;
  const height = 500;
  const margin = { left: 70, right: 200, top: 40, bottom: 55 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const all = series.flatMap((s) => s.points);
  const threshold = report.options.maxP99Ms;
  const minRate = Math.min(...all.map((p) => p.rate), 100);
  const maxRate = Math.max(...all.map((p) => p.rate), 1_000);
  const minLat = Math.max(0.1, Math.min(...all.map((p) => Math.max(p.p99, 0.1)), 1));
  const maxLat = Math.max(...all.map((p) => p.p99), threshold * 2);
  const x0 = Math.floor(Math.log10(minRate));
  const x1 = Math.ceil(Math.log10(maxRate));
  const y0 = Math.floor(Math.log10(minLat));
  const y1 = Math.ceil(Math.log10(maxLat));
  const sx = (rate: number) => margin.left + ((Math.log10(rate) - x0) / (x1 - x0)) * plotW;
  const sy = (ms: number) =>
    margin.top + plotH - ((Math.log10(Math.max(ms, 10 ** y0)) - y0) / (y1 - y0)) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${margin.left}" y="22" font-size="15" font-weight="bold">p99 delivery latency vs rate (${report.options.connections} connections, ${report.options.durationS} s steps)</text>`,
  );
  for (let e = x0; e <= x1; e++) {
    for (const m of [1, 2, 5]) {
      const rate = m * 10 ** e;
      if (rate < 10 ** x0 || rate > 10 ** x1) continue;
      const x = sx(rate);
      parts.push(
        `<line x1="${x.toFixed(1)}" y1="${margin.top}" x2="${x.toFixed(1)}" y2="${margin.top + plotH}" stroke="#e5e5e5"/>`,
        `<text x="${x.toFixed(1)}" y="${margin.top + plotH + 16}" text-anchor="middle">${rate >= 1000 ? `${rate / 1000}k` : rate}</text>`,
      );
    }
  }
  for (let e = y0; e <= y1; e++) {
    for (const m of [1, 2, 5]) {
      const ms = m * 10 ** e;
      if (ms < 10 ** y0 || ms > 10 ** y1) continue;
      const y = sy(ms);
      parts.push(
        `<line x1="${margin.left}" y1="${y.toFixed(1)}" x2="${margin.left + plotW}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`,
        `<text x="${margin.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${ms}</text>`,
      );
    }
  }
  parts.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<text x="${margin.left + plotW / 2}" y="${height - 12}" text-anchor="middle">rate (events or tasks per second, log)</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>`,
    `<line x1="${margin.left}" y1="${sy(threshold).toFixed(1)}" x2="${margin.left + plotW}" y2="${sy(threshold).toFixed(1)}" stroke="#999" stroke-dasharray="6 4"/>`,
    `<text x="${margin.left + 4}" y="${(sy(threshold) - 4).toFixed(1)}" fill="#666">${threshold} ms (held limit)</text>`,
  );
  series.forEach((s, i) => {
    const color = COLORS[s.name] ?? '#555';
    const points = s.points.map((p) => `${sx(p.rate).toFixed(1)},${sy(p.p99).toFixed(1)}`).join(' ');
    parts.push(
      `<polyline points="${points}" fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
    );
    for (const p of s.points) {
      const x = sx(p.rate).toFixed(1);
      const y = sy(p.p99).toFixed(1);
      parts.push(
        p.held
          ? `<circle cx="${x}" cy="${y}" r="3.5" fill="${color}"><title>${escapeXml(s.name)} ${p.rate}/s: p99 ${p.p99} ms</title></circle>`
          : `<circle cx="${x}" cy="${y}" r="4" fill="white" stroke="${color}" stroke-width="2"><title>${escapeXml(s.name)} ${p.rate}/s: p99 ${p.p99} ms (not held)</title></circle>`,
      );
    }
    const ly = margin.top + 14 + i * 20;
    const lx = margin.left + plotW + 16;
    parts.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 24}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${lx + 30}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  const ly = margin.top + 14 + series.length * 20 + 10;
  parts.push(
    `<circle cx="${margin.left + plotW + 28}" cy="${ly - 4}" r="4" fill="white" stroke="#555" stroke-width="2"/>`,
    `<text x="${margin.left + plotW + 46}" y="${ly}">not held (lost or p99 over)</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
