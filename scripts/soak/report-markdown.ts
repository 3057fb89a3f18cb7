/** The soak's report as a Markdown page: the figures of one deployment, or of several in a row. */
import type { SoakReport, Stats } from './reconcile.js';

function fmt(value: number | null): string {
  return value === null ? '–' : String(Math.round(value));
}

/** One deployment's figures. */
export function markdown(report: SoakReport): string {
  const rows = [
    ['overall', report.delayMs.overall],
    ['while the client slept (excluded above)', report.delayMs.whileClientAsleep],
    ...Object.entries(report.delayMs.within10sOfFault).map(
      ([kind, s]) => [`within 10 s of ${kind}`, s] as const,
    ),
  ] as const satisfies readonly (readonly [string, Stats])[];
  const skipped = Object.entries(report.faultsSkipped);
  return [
    `# Soak report: ${report.deployment} deployment (${report.options.quick ? 'quick' : 'long'}, seed ${report.options.seed})`,
    '',
    `${report.users} users, ${report.clients} clients, ${report.options.durationS} s of traffic at ${report.options.rate} tasks/s; ${report.wallClockS} s wall clock.`,
    '',
    '| figure | value |',
    '|---|---|',
    `| started | ${report.started} |`,
    `| start calls that gave up | ${report.startFailures} |`,
    `| completed (final) | ${report.completed} (${Object.entries(report.byStatus)
      .map(([status, n]) => `${status} ${n}`)
      .join(', ')}) |`,
    `| final after more than one attempt (retried) | ${report.retried} |`,
    `| not final at the end | ${report.notFinal} |`,
    `| started but unknown to the service | ${report.missingOnServer} |`,
    `| expected deliveries (final tasks × clients of the user) | ${report.expectedDeliveries} |`,
    `| delivered | ${report.delivered} |`,
    `| **lost** | **${report.lost}** |`,
    `| **duplicated** | **${report.duplicated}** |`,
    `| out of order (cursor) | ${report.outOfOrder} |`,
    `| unexpected (not a final task of the user) | ${report.unexpected} |`,
    `| status differs from the service | ${report.statusMismatch} |`,
    `| processes that crashed by themselves (restarted; see crashDetails) | ${report.crashes} |`,
    `| token refreshes after a short-lived token expired | ${report.tokenRefreshesAfterExpiry} |`,
    `| transient answers retried by the caller | ${
      Object.entries(report.serviceCalls.transientCodes)
        .map(([code, n]) => `${code} ×${n}`)
        .join(', ') || 'none'
    } |`,
    '',
    `Faults: ${Object.entries(report.faultCounts)
      .map(([kind, n]) => `${kind} ×${n}`)
      .join(', ')}`,
    ...(skipped.length > 0
      ? ['', `Skipped: ${skipped.map(([kind, why]) => `${kind} (${why})`).join('; ')}`]
      : []),
    '',
    '| delay from finishedAt to a client having it (ms) | n | p50 | p99 | max |',
    '|---|---|---|---|---|',
    ...rows.map(([label, s]) => `| ${label} | ${s.count} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.max)} |`),
    '',
  ].join('\n');
}
