/**
 * The end-to-end figures: per ramp the saturation throughput and the rate held at p99 ≤ 100 ms, and
 * every service ramp against the baseline's (CPU per task per rate, saturation, held rate), plus
 * bulk `startTasks` against single `startTask` calls.
 */
import type { BulkComparison, E2eFigures, E2eRatioReport, StepReport, SystemReport } from './report-shape.js';
import { ratio } from './stats.js';

/** An end-to-end step is sustained when the publisher issued at least this share of its offered rate. */
export const E2E_RATE_TOLERANCE = 0.98;
/** The end-to-end "held" rate is the highest sustained one whose p99 is at most this. */
export const E2E_HELD_P99_MS = 100;

/**
 * Figures of one ramp whose steps' `held` says sustained (achieved ≥ 98 %, nothing lost, p99 ≤
 * `saturationP99Ms`); the ramp stopped at the first step that was not.
 */
export function e2eFigures(
  steps: readonly StepReport[],
  rates: readonly number[],
  saturationP99Ms: number,
): E2eFigures {
  let saturation = 0;
  let held = 0;
  for (const step of steps) {
    if (!step.held) continue;
    saturation = Math.max(saturation, step.rate);
    if (step.latency.p99 <= E2E_HELD_P99_MS) held = Math.max(held, step.rate);
  }
  const last = steps.at(-1);
  return {
    saturationTasksPerS: saturation,
    saturationP99Ms,
    saturationIsRampEnd: steps.length === rates.length && last?.held === true,
    heldAt100MsTasksPerS: held,
  };
}

/** The baseline's end-to-end ramp, if it ran. */
export function baselineE2e(systems: readonly SystemReport[]) {
  return systems.find((s) => s.system === 'baseline')?.e2e[0] ?? null;
}

/** Each service ramp over the baseline's: CPU per task and p99 at the rates both ran, saturation, held. */
export function computeE2eRatios(systems: readonly SystemReport[]): E2eRatioReport[] {
  const base = baselineE2e(systems);
  if (!base) return [];
  const ratios: E2eRatioReport[] = [];
  for (const s of systems) {
    for (const run of s.e2e) {
      if (run.transport === 'baseline') continue;
      ratios.push({
        system: s.system,
        transport: run.transport,
        perRate: run.steps.flatMap((step) => {
          const other = base.steps.find((b) => b.rate === step.rate);
          if (!other) return [];
          return [
            {
              rate: step.rate,
              cpuPerTask: ratio(step.cpu.systemUsPerEvent, other.cpu.systemUsPerEvent),
              redisCpuPerTask: ratio(step.cpu.redisUsPerEvent, other.cpu.redisUsPerEvent),
              p99: ratio(step.latency.p99, other.latency.p99),
            },
          ];
        }),
        saturation: ratio(run.figures.saturationTasksPerS, base.figures.saturationTasksPerS),
        heldAt100Ms: ratio(run.figures.heldAt100MsTasksPerS, base.figures.heldAt100MsTasksPerS),
      });
    }
  }
  return ratios;
}

/** Bulk against single calls over HTTP, for each system that ran both. */
export function compareBulk(systems: readonly SystemReport[]): BulkComparison[] {
  const out: BulkComparison[] = [];
  for (const s of systems) {
    const bulk = s.e2e.find((run) => run.transport === 'bulk');
    const single = s.e2e.find((run) => run.transport === 'http');
    if (!bulk || !single) continue;
    out.push({
      system: s.system,
      bulkTasksPerS: bulk.figures.saturationTasksPerS,
      singleTasksPerS: single.figures.saturationTasksPerS,
      ratio: ratio(bulk.figures.saturationTasksPerS, single.figures.saturationTasksPerS),
    });
  }
  return out;
}
