/**
 * `npm run bench` in a very small configuration: it runs, and its report holds sane numbers. Never a
 * timing threshold (the machine may be busy); only counts, finiteness, and nothing lost at a low rate.
 * The Redis mode and the baseline run when Redis answers (always in CI, where its absence fails).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BenchReport, StepReport, SystemReport } from '../scripts/bench/report.js';
import { REPO_ROOT } from './utils/child-server.js';
import { TEST_REDIS_URL } from './utils/redis.js';
import { makeTempDir } from './utils/tserver.js';

const CONNECTIONS = 200;

async function redisAnswers(): Promise<boolean> {
  const { Redis } = await import('ioredis');
  const client = new Redis(TEST_REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

function runBench(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && key !== 'NODE_OPTIONS') env[key] = value;
    }
    execFile(
      process.execPath,
      ['--import', 'tsx', 'scripts/bench/run.ts', ...args],
      { cwd: REPO_ROOT, env, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 },
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
    if (key === 'redisPercent' && value === null) continue;
    expect(finite(value), `${where}: cpu.${key}`).toBe(true);
  }
  expect(step.cpu.serverPercent, `${where}: server CPU`).toBeGreaterThan(0);
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
  if (name !== 'baseline') {
    expectSaneStep(system.e2e[0], `${name} end to end`);
    expect(system.e2eHeld).not.toBeNull();
  }
  expect(system.loadgen?.dropped, `${name}: connections dropped`).toBe(0);
}

describe('npm run bench', () => {
  it('runs a small configuration and reports sane numbers', { timeout: 180_000 }, async () => {
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
    expect(report.version).toBe(1);
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
    }

    const markdown = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
    expect(markdown).toContain('# Benchmark report');
    expect(markdown).toContain('| rate/s |');
    expect(markdown).not.toContain('NaN');
    const svg = fs.readFileSync(path.join(out, 'latency.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('<polyline');
    expect(svg).not.toContain('NaN');
    fs.rmSync(out, { recursive: true, force: true });
  });
});
