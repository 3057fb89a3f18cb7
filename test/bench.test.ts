/**
 * `npm run bench` in a very small configuration: it runs, and its report holds sane numbers. Never a
 * timing threshold (the machine may be busy); only counts, finiteness, and nothing lost at a low rate.
 * The Redis mode and the baselines (fan-out, and end to end through BullMQ) run when Redis answers
 * (always in CI, where its absence fails). The end-to-end phase runs every transport: startTask over
 * HTTP and over graphql-ws, and bulk startTasks.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { redisVersion } from '../scripts/bench/redis-admin.js';
import type { BenchReport, E2eRun, StepReport, SystemReport } from '../scripts/bench/report-shape.js';
import { REPO_ROOT } from './utils/child-server.js';
import { TEST_REDIS_URL } from './utils/redis.js';
import { makeTempDir } from './utils/tserver.js';

const CONNECTIONS = 200;

/** Redis answers when the bench's own probe reads its version. */
const redisAnswers = async (): Promise<boolean> => (await redisVersion(TEST_REDIS_URL)) !== null;

function runBench(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && key !== 'NODE_OPTIONS') env[key] = value;
    }
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench/run.ts', ...args],
      { cwd: REPO_ROOT, env, timeout: 290_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const finite = (value: unknown) => typeof value === 'number' && Number.isFinite(value);

function expectSaneStep(step: StepReport | undefined, where: string): void {
  expect(step, where).toBeDefined();
  if (!step) return;
  expect(step.sent, `${where}: sent`).toBeGreaterThan(0);
  expect(step.delivered, `${where}: delivered`).toBeGreaterThan(0);
  expect(step.lost, `${where}: lost`).toBe(0);
  expect(step.duplicates, `${where}: duplicates`).toBe(0);
  expect(step.misrouted, `${where}: misrouted`).toBe(0);
  expect(step.latency.count, `${where}: latency samples`).toBe(step.delivered);
  for (const key of ['p50', 'p95', 'p99', 'max', 'mean'] as const) {
    expect(finite(step.latency[key]), `${where}: latency ${key}`).toBe(true);
    expect(step.latency[key], `${where}: latency ${key}`).toBeGreaterThanOrEqual(0);
  }
  expect(step.latency.p50).toBeLessThanOrEqual(step.latency.p99);
  expect(step.latency.p99).toBeLessThanOrEqual(step.latency.max);
  for (const [key, value] of Object.entries(step.cpu)) {
    if (['redisPercent', 'workerPercent', 'redisUsPerEvent'].includes(key) && value === null) continue;
    expect(finite(value), `${where}: cpu.${key}`).toBe(true);
  }
  expect(step.cpu.serverPercent, `${where}: server CPU`).toBeGreaterThan(0);
  expect(step.cpu.systemUsPerEvent, `${where}: system CPU per event`).toBeGreaterThanOrEqual(
    step.cpu.serverUsPerEvent,
  );
  expect(step.bottleneck, `${where}: bottleneck`).not.toBe('');
}

function expectSaneSystem(system: SystemReport | undefined, name: string): void {
  expect(system, name).toBeDefined();
  if (!system) return;
  expect(system.error, `${name}: error`).toBeNull();
  const connections = system.connections;
  expect(connections?.subscribed, `${name}: subscribed`).toBe(CONNECTIONS);
  expect(connections?.failed).toBe(0);
  expect(connections?.sentMs).toBeGreaterThan(0);
  expect(connections?.confirmedMs, `${name}: confirmed by the server`).toBeGreaterThan(0);
  expect(finite(connections?.rssPerConnectionBytes), `${name}: RSS per connection`).toBe(true);
  expect(finite(connections?.heapPerConnectionBytes), `${name}: heap per connection`).toBe(true);
  expectSaneStep(system.fanout[0], `${name} fan-out`);
  expect(system.fanoutHeld).not.toBeNull();
  const transports = system.e2e.map((run) => run.transport);
  expect(transports, `${name}: end-to-end ramps`).toEqual(
    name === 'baseline' ? ['baseline'] : ['http', 'ws', 'bulk'],
  );
  for (const run of system.e2e) expectSaneRun(run, `${name} end to end ${run.transport}`);
  if (name === 'baseline') {
    // Its worker process is part of the system, and so is Redis.
    const step = system.e2e[0]?.steps[0];
    expect(step?.cpu.workerPercent, 'baseline worker CPU').toBeGreaterThan(0);
    expect(step?.cpu.redisUsPerEvent, 'baseline Redis CPU per task').not.toBeNull();
  }
  expect(system.loadgen?.dropped, `${name}: connections dropped`).toBe(0);
  expect(system.loadgen?.errorFrames, `${name}: error frames`).toBe(0);
}

function expectSaneRun(run: E2eRun | undefined, where: string): void {
  expect(run, where).toBeDefined();
  if (!run) return;
  expectSaneStep(run.steps[0], where);
  expect(run.steps[0]?.publishErrors, `${where}: ${run.steps[0]?.firstPublishError}`).toBe(0);
  expect(run.description, `${where}: description`).not.toBe('');
  expect(finite(run.figures.saturationTasksPerS), `${where}: saturation`).toBe(true);
  expect(finite(run.figures.heldAt100MsTasksPerS), `${where}: held at 100 ms`).toBe(true);
  expect(run.figures.heldAt100MsTasksPerS).toBeLessThanOrEqual(run.figures.saturationTasksPerS);
}

describe('npm run bench', () => {
  it('runs a small configuration and reports sane numbers', { timeout: 300_000 }, async () => {
    const withRedis = process.env['CI'] === 'true' || (await redisAnswers());
    const out = makeTempDir('tss-bench-test-');
    const mode = withRedis ? 'both' : 'embedded';
    const result = await runBench([
      '--connections',
      String(CONNECTIONS),
      '--duration',
      '2',
      '--rates',
      '200',
      '--e2e-rates',
      '100',
      '--warmup',
      '1',
      '--mode',
      mode,
      '--redis-url',
      TEST_REDIS_URL,
      '--out',
      out,
    ]);
    expect(result.code, result.stderr.slice(-4_000)).toBe(0);

    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')) as BenchReport;
    expect(report.version).toBe(2);
    expect(report.options.connections).toBe(CONNECTIONS);
    const names = report.systems.map((s) => s.system);
    expect(names).toEqual(withRedis ? ['embedded', 'redis', 'baseline'] : ['embedded']);
    for (const name of names)
      expectSaneSystem(
        report.systems.find((s) => s.system === name),
        name,
      );
    if (withRedis) {
      expect(report.ratios.map((r) => r.system)).toEqual(['embedded', 'redis']);
      for (const ratio of report.ratios) {
        expect(finite(ratio.openSubscribe), `${ratio.system}: open ratio`).toBe(true);
        expect(ratio.perRate[0]?.rate).toBe(200);
        expect(finite(ratio.perRate[0]?.p99), `${ratio.system}: p99 ratio`).toBe(true);
      }
      // Every service ramp against the end-to-end baseline, at the rate both ran.
      expect(report.e2eRatios.map((r) => `${r.system}/${r.transport}`)).toEqual([
        'embedded/http',
        'embedded/ws',
        'embedded/bulk',
        'redis/http',
        'redis/ws',
        'redis/bulk',
      ]);
      for (const ratio of report.e2eRatios) {
        const where = `${ratio.system}/${ratio.transport}`;
        expect(ratio.perRate[0]?.rate, where).toBe(100);
        expect(finite(ratio.perRate[0]?.cpuPerTask), `${where}: CPU per task ratio`).toBe(true);
        expect(finite(ratio.perRate[0]?.p99), `${where}: p99 ratio`).toBe(true);
      }
      expect(
        report.e2eRatios
          .filter((r) => r.system === 'redis')
          .every((r) => finite(r.perRate[0]?.redisCpuPerTask)),
        'Redis CPU per task ratios',
      ).toBe(true);
    }
    expect(report.bulkVsSingle.map((b) => b.system)).toEqual(
      withRedis ? ['embedded', 'redis'] : ['embedded'],
    );
    for (const bulk of report.bulkVsSingle) {
      expect(
        finite(bulk.bulkTasksPerS) && finite(bulk.singleTasksPerS),
        `${bulk.system}: bulk vs single`,
      ).toBe(true);
    }

    const markdown = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(markdown).toContain('# Benchmark report');
    expect(markdown).toContain('| rate/s |');
    expect(markdown).toContain('## End to end: CPU per task');
    expect(markdown).toContain('| system / transport |');
    expect(markdown).toContain('Bulk, embedded mode');
    if (withRedis) expect(markdown).toContain('| baseline / POST → BullMQ → worker |');
    expect(markdown).not.toContain('NaN');
    const svg = fs.readFileSync(path.join(out, 'latency.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg).not.toContain('NaN');
    fs.rmSync(out, { recursive: true, force: true });
  });
});
