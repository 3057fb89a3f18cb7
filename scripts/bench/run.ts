/**
 * `npm run bench`: measures the service (embedded and Redis mode) and the baselines (raw ws +
 * ioredis for fan-out; plain http -> BullMQ -> worker process -> PUBLISH -> raw ws end to end)
 * under the same load, and writes report.json, report.md and latency.svg. See README "Benchmark".
 *
 * Processes: this orchestrator; the system under test (the service as `npm start` runs it,
 * `node build/main.js` compiled by `npm run build:server`, or the baseline's processes compiled the
 * same way: plain JavaScript, without tsx's per-function name wrappers); a load generator holding
 * the N client sockets; a publisher making the events and starting the tasks. Each child starts
 * through `bash -c 'ulimit -n …; exec node …'`, so server and client sockets live in different
 * processes, each under the fd limit. One system at a time: system-run.ts.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopEverything } from './child-registry.js';
import { compileServers } from './compile-servers.js';
import { CONFIRM_POLL_MS } from './connection-phase.js';
import { compareBulk, computeE2eRatios } from './e2e-summary.js';
import { renderLatencySvg } from './latency-svg.js';
import { log } from './log.js';
import { type BenchOptions, parseOptions, type SystemName, USAGE } from './options.js';
import { redisVersion } from './redis-admin.js';
import { computeRatios, renderMarkdown } from './report.js';
import { methodNotes } from './report-notes.js';
import type { BenchReport, SystemReport } from './report-shape.js';
import { round } from './stats.js';
import { hardFdLimit, machineInfo } from './sys.js';
import { runSystem } from './system-run.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

function gitRevision(): string | null {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd: REPO_ROOT })
      .toString()
      .trim();
    return dirty ? `${rev} (src modified)` : rev;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exit(2);
  }
  const startedAt = new Date().toISOString();
  const loadBefore = os.loadavg();
  const version = await redisVersion(options.redisUrl);
  const mode = options.mode ?? (version ? 'both' : 'embedded');
  if ((mode === 'redis' || mode === 'both') && !version) {
    console.error(`--mode ${mode}: no Redis answers at ${options.redisUrl}`);
    process.exit(2);
  }
  const systems: SystemName[] = [];
  if (mode === 'embedded' || mode === 'both') systems.push('embedded');
  if (mode === 'redis' || mode === 'both') systems.push('redis');
  const notes: string[] = [];
  const baseline = (options.baseline && options.fanout) || (options.e2eBaseline && options.e2e);
  if (baseline && version) systems.push('baseline');
  else if (baseline)
    notes.push(
      'No Redis: the baselines (raw ws + ioredis; http → BullMQ → worker) were not run, so there are no ratios.',
    );
  if (options.subscribeAs !== 'bench') {
    notes.push(`Every connection subscribed with --subscribe-as ${options.subscribeAs}.`);
  }
  fs.mkdirSync(options.out, { recursive: true });
  log(
    `systems ${systems.join(', ')}; ${options.connections} connections, ${options.durationS} s steps, ` +
      `fan-out rates ${options.rates.join(',')}, e2e rates ${options.e2eRates.join(',')} over ${options.e2eTransports.join(',')}; load average ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`,
  );
  const results: SystemReport[] = [];
  const compiled = await compileServers();
  for (const system of systems) results.push(await runSystem(system, options, notes, compiled));
  notes.push(...methodNotes(options, CONFIRM_POLL_MS));
  const report: BenchReport = {
    version: 2,
    startedAt,
    finishedAt: new Date().toISOString(),
    options,
    environment: {
      ...(({ loadAverage: _l, ...rest }) => rest)(machineInfo()),
      loadAverageBefore: loadBefore.map((v) => round(v, 2)),
      loadAverageAfter: os.loadavg().map((v) => round(v, 2)),
      fdHardLimit: hardFdLimit(),
      redisVersion: version,
      gitRevision: gitRevision(),
    },
    systems: results,
    ratios: computeRatios(results),
    e2eRatios: computeE2eRatios(results),
    bulkVsSingle: compareBulk(results),
    notes,
  };
  fs.writeFileSync(path.join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  const markdown = renderMarkdown(report);
  fs.writeFileSync(path.join(options.out, 'report.md'), markdown);
  fs.writeFileSync(path.join(options.out, 'latency.svg'), renderLatencySvg(report));
  console.log(markdown);
  log(`wrote ${path.join(options.out, 'report.json')}, report.md, latency.svg`);
  const failed = results.filter((r) => r.error !== null);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping children and cleaning up`);
    stopEverything().finally(() => process.exit(130));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  stopEverything().finally(() => process.exit(1));
});
