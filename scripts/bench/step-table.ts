/** The per-step table of a ramp: rate, delivery, latency, CPU of every process, GC, held. */
import { fmt, table, times } from './markdown-table.js';
import type { CpuFigures, StepReport } from './report-shape.js';
import { ratio } from './stats.js';

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

/** Which CPU per event the ratio column compares: the server's alone, or the whole system's. */
export type CpuRatio = 'server' | 'system';

const cpuPerEvent = (cpu: CpuFigures, which: CpuRatio) =>
  which === 'server' ? cpu.serverUsPerEvent : cpu.systemUsPerEvent;

/**
 * The steps as a Markdown table; with `base` (the baseline's steps of the same phase) two more
 * columns: p99 and CPU per event over the baseline's at the same rate.
 */
export function stepTable(
  steps: readonly StepReport[],
  base: readonly StepReport[] | null,
  which: CpuRatio,
): string {
  const header = base
    ? [...STEP_HEADER, 'p99 ×base', which === 'server' ? 'CPU/ev ×base' : 'system CPU/task ×base']
    : STEP_HEADER;
  const rows = steps.map((step) => {
    const other = base?.find((b) => b.rate === step.rate);
    const { cpu } = step;
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
      `${fmt(cpu.serverPercent)}% (${fmt(cpu.serverUsPerEvent)} µs/ev)` +
        `${cpu.workerPercent === null ? '' : ` + worker ${fmt(cpu.workerPercent)}%`}` +
        `${which === 'system' ? `; system ${fmt(cpu.systemUsPerEvent)} µs/task` : ''}`,
      `${fmt(cpu.loadgenPercent)}%`,
      `${fmt(cpu.publisherPercent)}%`,
      cpu.redisPercent === null ? '—' : `${fmt(cpu.redisPercent)}%`,
      `${fmt(cpu.otherPercent)}%`,
      step.gc
        ? `${fmt(step.gc.scavengeMs)} ms · ${step.gc.markCompacts} × (${fmt(step.gc.majorPauseMs)} + ${fmt(step.gc.markingMs)} ms), longest ${fmt(step.gc.longestMs)} ms`
        : '—',
      step.held ? 'yes' : `**no**: ${step.failures.join('; ')}`,
    ];
    if (base) {
      row.push(
        other ? times(ratio(step.latency.p99, other.latency.p99)) : '—',
        other ? times(ratio(cpuPerEvent(cpu, which), cpuPerEvent(other.cpu, which))) : '—',
      );
    }
    return row;
  });
  return table(header, rows);
}
