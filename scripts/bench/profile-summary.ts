/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): the functions with the most self time,
 * the most inclusive time, and self time grouped by package. Also a CLI:
 * `tsx scripts/bench/profile-summary.ts <file.cpuprofile> [top]`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly ms: number;
  /** Share of the non-idle time, %. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly durationMs: number;
  /** Sampled time that was not `(idle)`. */
  readonly busyMs: number;
  readonly topSelf: readonly ProfileEntry[];
  readonly topInclusive: readonly ProfileEntry[];
  readonly byPackage: readonly ProfileEntry[];
}

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** `function (file:line)` with the file relative to the repository or node_modules. */
function describe(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (!frame.url) return name;
  let file = frame.url.replace(/^file:\/\//, '');
  const modules = file.lastIndexOf('/node_modules/');
  if (modules >= 0) file = file.slice(modules + '/node_modules/'.length);
  else if (file.startsWith(REPO_ROOT)) file = file.slice(REPO_ROOT.length);
  return `${name} (${file}:${frame.lineNumber + 1})`;
}

/** The package (or `service src`, `node internals`, a V8 pseudo-frame) a frame belongs to. */
function packageOf(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return 'node internals';
  const file = url.replace(/^file:\/\//, '');
  if (file.startsWith(REPO_ROOT)) {
    const relative = file.slice(REPO_ROOT.length);
    const parts = relative.split('/');
    return parts.length > 2 ? `${parts[0]}/${parts[1]}` : relative;
  }
  return url;
}

function top(map: Map<string, number>, count: number, busyMs: number): ProfileEntry[] {
  return [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({
      name,
      ms: Math.round(ms * 10) / 10,
      percent: busyMs > 0 ? Math.round((ms / busyMs) * 1000) / 10 : 0,
    }));
}

export interface SummaryOptions {
  /** Entries per table. @default 25 */
  readonly count?: number;
  /**
   * Only samples taken inside these [start, end] intervals, in µs of the monotonic clock V8 stamps
   * profiles with (the clock of `process.hrtime`, so another process on the machine can give them).
   */
  readonly windows?: readonly (readonly [number, number])[];
}

export function summarizeProfile(file: string, { count = 25, windows }: SummaryOptions = {}): ProfileSummary {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  // Self time per node from the sample timeline (each delta belongs to the sample it precedes).
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let at = profile.startTime;
  let windowUs = 0;
  for (let i = 0; i < samples.length; i++) {
    at += deltas[i] ?? 0;
    if (windows && !windows.some(([start, end]) => at >= start && at <= end)) continue;
    const id = samples[i] as number;
    const delta = Math.max(0, deltas[i + 1] ?? 0);
    windowUs += delta;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const packages = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') continue;
    busyUs += us;
    const key = describe(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + us / 1000);
    const pkg = packageOf(node.callFrame);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us / 1000);
    // Inclusive: once per distinct function on the stack (recursion counted once).
    const onStack = new Set<string>();
    for (let cursor: number | undefined = id; cursor !== undefined; cursor = parent.get(cursor)) {
      const frame = byId.get(cursor)?.callFrame;
      if (!frame || frame.functionName === '(root)') continue;
      onStack.add(describe(frame));
    }
    for (const name of onStack) inclusive.set(name, (inclusive.get(name) ?? 0) + us / 1000);
  }
  const busyMs = busyUs / 1000;
  return {
    file: path.basename(file),
    durationMs: Math.round((windows ? windowUs : profile.endTime - profile.startTime) / 1000),
    busyMs: Math.round(busyMs),
    topSelf: top(self, count, busyMs),
    topInclusive: top(inclusive, count, busyMs),
    byPackage: top(packages, 15, busyMs),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [file, count] = process.argv.slice(2);
  if (!file) {
    console.error('usage: tsx scripts/bench/profile-summary.ts <file.cpuprofile> [top]');
    process.exit(2);
  }
  const summary = summarizeProfile(file, { count: count ? Number(count) : 25 });
  console.log(`${summary.file}: ${summary.durationMs} ms, busy ${summary.busyMs} ms`);
  for (const [title, entries] of [
    ['self', summary.topSelf],
    ['inclusive', summary.topInclusive],
    ['by package (self)', summary.byPackage],
  ] as const) {
    console.log(`\n${title}:`);
    for (const entry of entries)
      console.log(
        `${entry.percent.toFixed(1).padStart(6)}%  ${entry.ms.toFixed(0).padStart(7)} ms  ${entry.name}`,
      );
  }
}
