/**
 * The bench report in Markdown, and the fan-out ratios to the baseline (its shape: report-shape.ts;
 * the end-to-end section: e2e-report.ts; the latency chart: latency-svg.ts).
 */
import { renderE2eSection } from './e2e-report.js';
import { fmt, kb, mb, table, times } from './markdown-table.js';
import type { BenchReport, RatioReport, SystemReport } from './report-shape.js';
import { ratio } from './stats.js';
import { stepTable } from './step-table.js';

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
      ['system', 'open+subscribe', 'RSS/conn', 'heap/conn', 'fan-out held (events/s)', 'fan-out ended by'],
      report.systems.map((s) => [
        s.label,
        s.connections ? `${fmt(s.connections.confirmedMs ?? s.connections.sentMs)} ms` : '—',
        kb(s.connections?.rssPerConnectionBytes),
        kb(s.connections?.heapPerConnectionBytes),
        s.fanoutHeld ? String(s.fanoutHeld.highestRateHeld) : '—',
        s.fanoutHeld ? `${s.fanoutHeld.endedBy} — bottleneck: ${s.fanoutHeld.bottleneck}` : '—',
      ]),
    ),
    '',
  );
  out.push(...renderE2eSection(report));

  if (report.ratios.length > 0) {
    out.push('## Connection and fan-out ratios to the baseline (service ÷ baseline)', '');
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
    for (const run of s.e2e) out.push(`- end-to-end path (${run.transport}): ${run.description}`);
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
    const withBase = s.system !== 'baseline' && base && base.fanout.length > 0 ? base.fanout : null;
    if (s.fanout.length > 0) {
      out.push('### Fan-out', '', stepTable(s.fanout, withBase, 'server'), '');
      if (s.fanoutHeld) {
        out.push(
          `Highest rate held: **${s.fanoutHeld.highestRateHeld}/s**; ${s.fanoutHeld.endedBy}; bottleneck: ${s.fanoutHeld.bottleneck}.`,
          '',
        );
      }
    }
    const e2eBase = base?.e2e[0] ?? null;
    for (const run of s.e2e) {
      out.push(
        `### End to end, ${run.transport === 'baseline' ? 'POST /tasks' : run.transport} (echo task → completion on the socket)`,
        '',
        stepTable(run.steps, s.system !== 'baseline' && e2eBase ? e2eBase.steps : null, 'system'),
        '',
        `Saturation: **${run.figures.saturationTasksPerS}${run.figures.saturationIsRampEnd ? '+' : ''} tasks/s**; ` +
          `held at p99 ≤ 100 ms: **${run.figures.heldAt100MsTasksPerS} tasks/s**; ${run.held.endedBy.replace('not held', 'not sustained')}; ` +
          `bottleneck: ${run.held.bottleneck}.`,
        '',
      );
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
