/** Process and machine measurements from /proc, child spawning with a raised fd limit, small helpers. */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime. */
const CLOCK_TICKS = readClockTicks();

function readClockTicks(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Wall clock in epoch ms with sub-ms precision, comparable across processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The clock V8 stamps CPU profiles with (CLOCK_MONOTONIC), in µs. */
export const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

/** CPU time (user + system) of a process so far, in ms; `null` once it is gone. */
export function processCpuMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/** Resident set size of a process in bytes (VmRSS), `null` once it is gone. */
export function processRssBytes(pid: number): number | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match?.[1] ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Busy and total CPU time of the whole machine so far, in ms (all cores). */
export interface MachineCpu {
  readonly busyMs: number;
  readonly totalMs: number;
}

export function machineCpu(): MachineCpu {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = values.reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busyMs: ((total - idle) * 1000) / CLOCK_TICKS, totalMs: (total * 1000) / CLOCK_TICKS };
}

/** The hard RLIMIT_NOFILE of this shell's children. */
export function hardFdLimit(): number {
  try {
    const value = execFileSync('bash', ['-c', 'ulimit -Hn']).toString().trim();
    return value === 'unlimited' ? 1_048_576 : Number(value);
  } catch {
    return 1024;
  }
}

export interface SpawnedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** The last lines the child wrote to stderr. */
  stderrTail(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
}

export interface SpawnOptions {
  readonly name: string;
  /** Arguments of `node` (flags, then the entry file and its arguments). */
  readonly nodeArgs: readonly string[];
  readonly env: Record<string, string>;
  readonly cwd: string;
  /** Soft RLIMIT_NOFILE to set before exec. */
  readonly fdLimit: number;
  /** Called with each stdout line when the child's stdout is not an RPC channel. */
  readonly onStdoutLine?: (line: string) => void;
  /** Echo this many stderr lines to our stderr (prefixed), then only count them. @default 20 */
  readonly echoStderrLines?: number;
}

/**
 * Starts `node <nodeArgs>` through `bash -c 'ulimit -n <fdLimit>; exec …'`, so the child (same pid
 * as the shell, thanks to exec) may hold that many sockets. stdin and stdout are pipes.
 */
export function spawnNode(options: SpawnOptions): SpawnedChild {
  const child = spawn(
    'bash',
    [
      '-c',
      'ulimit -n "$0" || exit 97; exec "$@"',
      String(options.fdLimit),
      process.execPath,
      ...options.nodeArgs,
    ],
    { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) throw new Error(`${options.name}: spawn failed`);
  const tail: string[] = [];
  let echoed = 0;
  const maxEcho = options.echoStderrLines ?? 20;
  let partial = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      tail.push(line);
      if (tail.length > 50) tail.shift();
      if (echoed < maxEcho) {
        echoed++;
        process.stderr.write(`[${options.name}] ${line.slice(0, 500)}\n`);
        if (echoed === maxEcho) process.stderr.write(`[${options.name}] (further stderr lines not echoed)\n`);
      }
    }
  });
  if (options.onStdoutLine) {
    let out = '';
    const onLine = options.onStdoutLine;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (out + chunk).split('\n');
      out = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
  });
  return {
    child,
    pid: child.pid,
    name: options.name,
    stderrTail: () => tail.join('\n'),
    exited,
    hasExited: () => done,
  };
}

/** Sends `signal`, then SIGKILL if the child is still there after `graceMs`. */
export async function stopChild(spawned: SpawnedChild, signal: NodeJS.Signals, graceMs: number) {
  if (spawned.hasExited()) return spawned.exited;
  spawned.child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      if (!spawned.hasExited()) spawned.child.kill('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([spawned.exited, killed]);
  clearTimeout(timer);
  return spawned.exited;
}

/** GETs a local URL; resolves with status and body, rejects on connection errors or after `timeoutMs`. */
export async function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, body: await response.text() };
}

/** Polls `check` every `intervalMs` until it returns true; false after `timeoutMs`. */
export async function pollUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, intervalMs = 50) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${os.type()} ${os.release()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memTotalBytes: os.totalmem(),
    loadAverage: os.loadavg(),
  };
}
