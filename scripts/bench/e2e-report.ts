/**
 * The report's end-to-end section: per system and transport, CPU per task at each rate (the whole
 * system's, and Redis's alone), the saturation throughput and the rate held at p99 ≤ 100 ms, each
 * against the baseline's; then bulk `startTasks` against single `startTask` calls.
 */
import { baselineE2e, E2E_HELD_P99_MS } from './e2e-summary.js';
import { fmt, table, times } from './markdown-table.js';
import { BULK_INPUTS } from './protocol.js';
import type { BenchReport, E2eFigures, E2eRun, StepReport } from './report-shape.js';
import { ratio } from './stats.js';

const SUMMED =
  'CPU per task sums every process of the system: the baseline = its http/ws server + its BullMQ worker process + Redis; ' +
  'Redis mode = the service process + Redis; embedded = the service process. Redis (the whole Redis server) is also shown alone below.';

const rowName = (system: string, run: E2eRun) =>
  run.transport === 'baseline' ? 'baseline / POST → BullMQ → worker' : `${system} / ${run.transport}`;

/** `N`, or `N+` when the ramp's last rate was still sustained. */
export const saturationText = (figures: E2eFigures) =>
  `${figures.saturationTasksPerS}${figures.saturationIsRampEnd ? '+' : ''}`;

function perRateCell(
  run: E2eRun,
  base: E2eRun | null,
  rate: number,
  value: (step: StepReport) => number | null,
): string {
  const step = run.steps.find((s) => s.rate === rate);
  if (!step) return '—';
  const mine = value(step);
  if (mine === null) return '—';
  const mark = step.held ? '' : '*';
  const other = base && base !== run ? base.steps.find((s) => s.rate === rate) : undefined;
  const against = other ? ` (${times(ratio(mine, value(other)))})` : '';
  return `${fmt(mine)} µs${mark}${against}`;
}

function bulkCaveat(bulk: E2eFigures, single: E2eFigures): string {
  if (bulk.saturationIsRampEnd && single.saturationIsRampEnd)
    return ' (both outlasted the ramp: raise --e2e-rates)';
  if (bulk.saturationIsRampEnd) return ' (a lower bound: bulk outlasted the ramp)';
  return '';
}

/** The end-to-end section, or nothing when no end-to-end ramp ran. */
export function renderE2eSection(report: BenchReport): string[] {
  // The baseline first: every other row is read against it.
  const runs = report.systems
    .flatMap((s) => s.e2e.map((run) => ({ system: s.system, run })))
    .sort((a, b) => Number(b.run.transport === 'baseline') - Number(a.run.transport === 'baseline'));
  if (runs.length === 0) return [];
  const base = baselineE2e(report.systems);
  const rates = [...new Set(runs.flatMap(({ run }) => run.steps.map((step) => step.rate)))].sort(
    (a, b) => a - b,
  );
  const limit = report.options.saturationP99Ms;
  const out: string[] = [
    '## End to end: CPU per task, saturation, held rate (× = over the baseline)',
    '',
    `${SUMMED} Saturation = the highest offered rate sustained (achieved ≥ 98 %, nothing lost, p99 ≤ ${limit} ms; "N+": the ramp ended first); ` +
      `held = the highest sustained rate with p99 ≤ ${E2E_HELD_P99_MS} ms. * = a step that was not sustained.`,
    '',
  ];
  out.push(
    table(
      [
        'system / transport',
        ...rates.map((rate) => `CPU/task @${rate}/s`),
        'saturation tasks/s',
        `held at p99 ≤ ${E2E_HELD_P99_MS} ms`,
        'ratio to baseline (saturation · held)',
      ],
      runs.map(({ system, run }) => {
        const { figures } = run;
        return [
          rowName(system, run),
          ...rates.map((rate) => perRateCell(run, base, rate, (step) => step.cpu.systemUsPerEvent)),
          saturationText(figures),
          String(figures.heldAt100MsTasksPerS),
          base
            ? `${times(ratio(figures.saturationTasksPerS, base.figures.saturationTasksPerS))} · ` +
              `${times(ratio(figures.heldAt100MsTasksPerS, base.figures.heldAt100MsTasksPerS))}`
            : '— (no baseline)',
        ];
      }),
    ),
    '',
  );
  const withRedis = runs.filter(({ run }) => run.steps.some((step) => step.cpu.redisUsPerEvent !== null));
  if (withRedis.length > 0) {
    out.push(
      table(
        ['system / transport', ...rates.map((rate) => `Redis CPU/task @${rate}/s`)],
        withRedis.map(({ system, run }) => [
          rowName(system, run),
          ...rates.map((rate) => perRateCell(run, base, rate, (step) => step.cpu.redisUsPerEvent)),
        ]),
      ),
      '',
    );
  }
  for (const bulk of report.bulkVsSingle) {
    const single = report.systems
      .find((s) => s.system === bulk.system)
      ?.e2e.find((r) => r.transport === 'http');
    const many = report.systems
      .find((s) => s.system === bulk.system)
      ?.e2e.find((r) => r.transport === 'bulk');
    if (!single || !many) continue;
    out.push(
      `**Bulk, ${bulk.system} mode**: \`startTasks\` with ${BULK_INPUTS} inputs per call sustained ${saturationText(many.figures)} tasks/s, ` +
        `single \`startTask\` calls over HTTP ${saturationText(single.figures)} tasks/s: bulk ÷ single = **${times(bulk.ratio)}**` +
        `${bulkCaveat(many.figures, single.figures)}.`,
      '',
    );
  }
  return out;
}
