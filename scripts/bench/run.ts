/**
 * `npm run bench`: measures the service (embedded and Redis mode) and a raw ws + ioredis baseline
 * under the same load, and writes report.json, report.md and latency.svg. See README "Benchmark".
 *
 * Processes: this orchestrator; the system under test (the service as `npm start` runs it,
 * `node build/main.js` compiled by `npm run build:server`, or baseline-server.ts compiled the same
 * way: plain JavaScript, without tsx's per-function name wrappers); a load generator holding the N client sockets; a publisher making the
 * events. Each child starts through `bash -c 'ulimit -n …; exec node …'`, so server and client
 * sockets live in different processes, each under the fd limit.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';
import { Redis } from 'ioredis';
import { freePort, inheritedEnv } from '../lib/local.js';
import { heapAfterGc, heapByKind } from './inspector.js';
import { type BenchOptions, parseOptions, type SystemName, USAGE } from './options.js';
import { summarizeProfile } from './profile-summary.js';
import type { FanoutPath, LoadGenApi, PublisherApi, RunResult, StepReceipt } from './protocol.js';
import {
  type BenchReport,
  type ConnectionReport,
  type CpuFigures,
  computeRatios,
  type HeldSummary,
  renderLatencySvg,
  renderMarkdown,
  type ScopedProfile,
  type StepReport,
  type SystemReport,
} from './report.js';
import { RpcClient } from './rpc.js';
import { round } from './stats.js';
import {
  hardFdLimit,
  httpGet,
  machineCpu,
  machineInfo,
  nowMs,
  pollUntil,
  processCpuMs,
  processRssBytes,
  type SpawnedChild,
  sleep,
  spawnNode,
  stopChild,
} from './sys.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
const EVENT_RETENTION = 1_000;
/** How often the open phase asks the server how many subscriptions are in effect. */
const CONFIRM_POLL_MS = 50;
/** Heap snapshots of more connections than this grow past what one process can parse comfortably. */
const MAX_SNAPSHOT_CONNECTIONS = 2_000;
/** Tasks per second the publisher creates while preparing a fan-out step. */
const PREPARE_RATE = 8_000;
/** A step counts as sent at its rate when the publisher issued at least this share of it. */
const RATE_TOLERANCE = 0.95;
/** CPU share of one core above which a process is named the bottleneck. */
const SATURATED_PERCENT = 85;

const cleanups: (() => Promise<void>)[] = [];
const children = new Set<SpawnedChild>();

/** The clock V8 stamps CPU profiles with (CLOCK_MONOTONIC), in µs. */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

async function redisVersion(url: string): Promise<string | null> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const info = await client.info('server');
    return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

/** Deletes every key of a bench prefix (task data, streams, queue), in bounded batches. */
async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  for (const pattern of [`${prefix}:*`, `{${prefix}:q}*`]) {
    let cursor = '0';
    for (let rounds = 0; rounds < 100_000; rounds++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5_000);
      if (keys.length > 0) deleted += await redis.unlink(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  }
  return deleted;
}

/** Running GC totals of one isolate. */
interface GcTotals {
  scavenges: number;
  scavengeMs: number;
  markCompacts: number;
  /** Atomic (final) pauses of major GCs. */
  majorPauseMs: number;
  /** Incremental marking steps interleaved with JavaScript before major GCs ("+ X ms in N steps"). */
  markingMs: number;
  /** Longest single major pause or marking step since the last mark. */
  longestMs: number;
}

/**
 * Counts GC work from a child's `--trace-gc` lines. Lines start with `[pid:isolate]`; the busiest
 * isolate is the main thread (a loader thread, if any, runs beside it).
 */
class GcCounter {
  readonly #isolates = new Map<string, GcTotals>();

  onLine(line: string): void {
    const match =
      /^\[\d+:(0x[0-9a-f]+)\]\s+\d+ ms: (Scavenge|Minor Mark-Compact|Mark-Compact|Mark-Sweep)[^,]*, ([\d.]+) \/ [\d.]+ ms(?:\s+\(\+ ([\d.]+) ms in \d+ steps since start of marking, biggest step ([\d.]+) ms)?/.exec(
        line,
      );
    if (!match?.[1]) return;
    let totals = this.#isolates.get(match[1]);
    if (!totals) {
      totals = { scavenges: 0, scavengeMs: 0, markCompacts: 0, majorPauseMs: 0, markingMs: 0, longestMs: 0 };
      this.#isolates.set(match[1], totals);
    }
    const pause = Number(match[3]);
    if (match[2] === 'Scavenge' || match[2] === 'Minor Mark-Compact') {
      totals.scavenges++;
      totals.scavengeMs += pause;
      return;
    }
    totals.markCompacts++;
    totals.majorPauseMs += pause;
    totals.markingMs += Number(match[4] ?? 0);
    totals.longestMs = Math.max(totals.longestMs, pause, Number(match[5] ?? 0));
  }

  /** Totals of the main isolate so far; `longestMs` since the previous mark. */
  mark(): GcTotals {
    let main: GcTotals | undefined;
    for (const totals of this.#isolates.values()) {
      if (!main || totals.scavenges > main.scavenges) main = totals;
    }
    const snapshot = main
      ? { ...main }
      : { scavenges: 0, scavengeMs: 0, markCompacts: 0, majorPauseMs: 0, markingMs: 0, longestMs: 0 };
    if (main) main.longestMs = 0;
    return snapshot;
  }
}

/** How the orchestrator reads the server's subscription count and heap. */
interface ServerProbe {
  /** Subscriptions in effect now; `null` when the server does not say. */
  subscriptions(): Promise<number | null>;
  heapUsed(): Promise<number | null>;
  readonly confirmedBy: string;
  readonly heapSource: string;
}

function metricValue(body: string, pattern: RegExp): number | null {
  const match = pattern.exec(body);
  return match?.[1] ? Number(match[1]) : null;
}

function serviceProbe(base: string): ServerProbe {
  const metrics = async () => (await httpGet(`${base}/metrics`)).body;
  return {
    subscriptions: async () => {
      // Just the gauge: a full scrape lists /proc/self/fd, whose cost grows with the sockets.
      const body = (await httpGet(`${base}/metrics?name=tss_subscriptions_active`)).body;
      const value = metricValue(body, /^tss_subscriptions_active\{field="taskCompleted"\} (\S+)$/m);
      // A labelled gauge has no sample before its first subscription.
      return value ?? (body.includes('# TYPE tss_subscriptions_active gauge') ? 0 : null);
    },
    heapUsed: async () => metricValue(await metrics(), /^nodejs_heap_size_used_bytes (\S+)$/m),
    confirmedBy: 'tss_subscriptions_active on /metrics',
    heapSource: 'nodejs_heap_size_used_bytes on /metrics',
  };
}

function baselineProbe(base: string): ServerProbe {
  const stats = async () =>
    JSON.parse((await httpGet(`${base}/stats`)).body) as { subscribed: number; heapUsed: number };
  return {
    subscriptions: async () => (await stats()).subscribed,
    heapUsed: async () => (await stats()).heapUsed,
    confirmedBy: 'Redis SUBSCRIBE confirmed, /stats',
    heapSource: 'process.memoryUsage() on /stats',
  };
}

interface CpuSnapshot {
  readonly at: number;
  readonly server: number;
  readonly loadgen: number;
  readonly publisher: number;
  readonly redis: number | null;
  readonly machine: ReturnType<typeof machineCpu>;
}

async function redisCpuMs(redis: Redis | null): Promise<number | null> {
  if (!redis) return null;
  const info = await redis.info('cpu');
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1]);
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1]);
  return Number.isFinite(sys + user) ? (sys + user) * 1000 : null;
}

const FANOUT_PATHS: Record<SystemName, { path: FanoutPath; description: string; e2e: string | null }> = {
  embedded: {
    path: 'api',
    description:
      'the embedded store belongs to the server process, so the publisher drives the service API over HTTP with a service token: ' +
      'before each step it creates the step\'s tasks with `startTask(kind: "external", userId)` (15 per request; not timed), ' +
      'then, at the step rate, `completeTask(id, result: { bench: { t: sentAt, … } })`: one HTTP mutation, one SQLite transaction and one in-process publish per event. ' +
      'The latency includes the mutation.',
    e2e:
      '`startTask(kind: "echo", userId, input: { value: { bench: … } })` over HTTP by a service caller; the in-process runner claims and runs it; ' +
      'latency from the request to the SUCCEEDED event on the socket.',
  },
  redis: {
    path: 'repository',
    description:
      "the publisher process imports `RedisRepository` + `RedisKeys` from src/backends/redis; before each step it `create`s the step's external tasks (not timed), " +
      'then, at the step rate, `transition(id, externalFinish({ result: { bench: … } }))` — the write `completeTask` makes: GET owner, HGET, then the Lua script ' +
      "(HSET task, XADD to the user's stream, PUBLISH on `<prefix>:{u:<user>}:live`). sentAt is taken inside the change, just before the script.",
    e2e:
      '`startTask(kind: "echo", userId, input: { value: { bench: … } })` over HTTP by a service caller; BullMQ job, run by the server\'s own workers ' +
      '(WORKER_CONCURRENCY); the QUEUED, RUNNING and SUCCEEDED events all go through Redis pub/sub.',
  },
  baseline: {
    path: 'publish',
    description:
      'plain Redis PUBLISH on `<prefix>:{u:<user>}:live` of the JSON payload the service would send for the event (cursor, replayed, task { id status result finishedAt }), sentAt taken while building it.',
    e2e: null,
  },
};

/** The servers as plain JavaScript: the service as `npm start` runs it, and the baseline. */
interface CompiledServers {
  readonly service: string;
  readonly baseline: string;
}

/**
 * Compiles both servers before they are measured. Under tsx every named function is wrapped to keep
 * its name, which makes each closure cost about 250 B more heap; `npm start` runs compiled code.
 */
async function compileServers(): Promise<CompiledServers> {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
  // Inside the repository, so that its packages resolve from node_modules.
  const baseline = path.join(REPO_ROOT, 'build', 'bench', 'baseline-server.mjs');
  await esbuild({
    entryPoints: [path.join(BENCH_DIR, 'baseline-server.ts')],
    outfile: baseline,
    bundle: true,
    packages: 'external',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
  });
  return { service: path.join(REPO_ROOT, 'build', 'main.js'), baseline };
}

/** Runs one system under test from start to stop; never throws (errors land in the report). */
async function runSystem(
  system: SystemName,
  options: BenchOptions,
  notes: string[],
  compiled: CompiledServers,
): Promise<SystemReport> {
  const label = system === 'baseline' ? 'baseline (raw ws + ioredis)' : `service, ${system} mode`;
  const paths = FANOUT_PATHS[system];
  /** Monotonic µs intervals of the measured step windows, to cut the CPU profile to them. */
  const windows = {
    open: [] as [number, number][],
    fanout: [] as [number, number][],
    e2e: [] as [number, number][],
  };
  const report: {
    -readonly [K in keyof SystemReport]: SystemReport[K];
  } & { profiles: ScopedProfile[] } = {
    system,
    label,
    fanoutPath: paths.path,
    fanoutPathDescription: paths.description,
    e2ePathDescription: system === 'baseline' ? null : paths.e2e,
    connections: null,
    warmup: null,
    fanout: [],
    fanoutHeld: null,
    e2e: [],
    e2eHeld: null,
    loadgen: null,
    profiles: [],
    heapPerConnectionByKind: null,
    error: null,
  };
  const usesRedis = system !== 'embedded';
  const prefix = `bench-${system}-${randomBytes(4).toString('hex')}`;
  const dataDir = system === 'embedded' ? fs.mkdtempSync(path.join(os.tmpdir(), 'tss-bench-')) : null;
  const profileDir = path.resolve(options.out, 'profiles', `${system}-${Date.now()}`);
  const secret = randomBytes(32).toString('hex');
  const fdLimit = Math.min(hardFdLimit(), Math.max(4_096, options.connections + 2_000));
  const redis = usesRedis ? new Redis(options.redisUrl, { maxRetriesPerRequest: 3 }) : null;
  redis?.on('error', () => {});
  let server: SpawnedChild | null = null;
  let loadgen: SpawnedChild | null = null;
  let publisher: SpawnedChild | null = null;
  let serverLog: fs.WriteStream | null = null;
  const cleanup = async () => {
    for (const child of [loadgen, publisher]) if (child) await stopChild(child, 'SIGTERM', 5_000);
    if (server) await stopChild(server, 'SIGTERM', options.cpuProf ? 120_000 : 20_000);
    serverLog?.end();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    if (redis) {
      try {
        const deleted = await deletePrefix(redis, prefix);
        log(`${system}: deleted ${deleted} Redis keys of ${prefix}`);
      } catch (error) {
        log(`${system}: could not delete Redis prefix ${prefix}: ${String(error)}`);
      }
      redis.disconnect();
    }
  };
  cleanups.push(cleanup);
  const gc = new GcCounter();
  try {
    if (options.connections + 200 > fdLimit) {
      throw new Error(
        `${options.connections} connections need more file descriptors than the hard limit allows (${hardFdLimit()})`,
      );
    }
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const inspectPort = await freePort();
    const nodeFlags = [
      `--inspect=127.0.0.1:${inspectPort}`,
      ...(options.traceGc ? ['--trace-gc'] : []),
      ...(options.cpuProf && system !== 'baseline' ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []),
    ];
    // NODE_ENV=production serves /metrics only on METRICS_PORT.
    const metricsPort = await freePort();
    const env = inheritedEnv();
    if (system === 'baseline') {
      Object.assign(env, { PORT: String(port), REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: prefix });
    } else {
      Object.assign(env, {
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ENV: 'production',
        METRICS_PORT: String(metricsPort),
        AUTH_JWT_SECRET: secret,
        LOG_LEVEL: 'warn',
        WORKER_CONCURRENCY: String(options.workers),
        EVENT_RETENTION: String(EVENT_RETENTION),
        ...(dataDir ? { DATA_DIR: dataDir } : { REDIS_URL: options.redisUrl, REDIS_KEY_PREFIX: prefix }),
      });
    }
    // The server's stdout (its --trace-gc lines among them), for a closer look at GC pauses.
    const stdoutLog = fs.createWriteStream(path.join(options.out, `server-${system}.log`));
    serverLog = stdoutLog;
    server = spawnNode({
      name: system,
      nodeArgs: [...nodeFlags, system === 'baseline' ? compiled.baseline : compiled.service],
      env,
      cwd: REPO_ROOT,
      fdLimit,
      onStdoutLine: (line) => {
        gc.onLine(line);
        stdoutLog.write(`${line}\n`);
      },
    });
    children.add(server);
    const probe =
      system === 'baseline' ? baselineProbe(base) : serviceProbe(`http://127.0.0.1:${metricsPort}`);
    const started = server;
    const up = await pollUntil(
      async () => {
        if (started.hasExited())
          throw new Error(`${system} server exited at start:\n${started.stderrTail()}`);
        try {
          return (
            (await httpGet(`${base}${system === 'baseline' ? '/stats' : '/readyz'}`, 2_000)).status === 200
          );
        } catch {
          return false;
        }
      },
      60_000,
      100,
    );
    if (!up) throw new Error(`${system} server did not answer within 60 s:\n${started.stderrTail()}`);
    log(`${system}: server up on ${base} (pid ${server.pid})`);

    const benchChild = (name: string, file: string) => {
      const child = spawnNode({
        name,
        nodeArgs: ['--import', 'tsx', path.join(BENCH_DIR, file)],
        env: inheritedEnv(),
        cwd: REPO_ROOT,
        fdLimit,
      });
      children.add(child);
      return child;
    };
    loadgen = benchChild(`${system}:loadgen`, 'load-generator.ts');
    publisher = benchChild(`${system}:publisher`, 'publisher.ts');
    const lg = new RpcClient<LoadGenApi>(loadgen.child, `${system}:loadgen`);
    const pub = new RpcClient<PublisherApi>(publisher.child, `${system}:publisher`);
    await pub.call(
      'init',
      {
        path: paths.path,
        users: options.connections,
        seed: options.seed,
        redisUrl: usesRedis ? options.redisUrl : null,
        keyPrefix: usesRedis ? prefix : null,
        eventRetention: EVENT_RETENTION,
        graphqlUrl: system === 'baseline' ? null : `${base}/graphql`,
        secret: system === 'baseline' ? null : secret,
      },
      60_000,
    );

    // ---- connections
    await sleep(500);
    let heapSource = 'V8 inspector: Runtime.getHeapUsage after HeapProfiler.collectGarbage';
    const readHeap = async () => {
      try {
        return await heapAfterGc(inspectPort);
      } catch (error) {
        heapSource = `${probe.heapSource} (no forced GC: ${error instanceof Error ? error.message : String(error)})`;
        return probe.heapUsed().catch(() => null);
      }
    };
    const snapshots = options.heapSnapshot && options.connections <= MAX_SNAPSHOT_CONNECTIONS;
    if (options.heapSnapshot && !snapshots) {
      notes.push(
        `--heap-snapshot skipped: more than ${MAX_SNAPSHOT_CONNECTIONS} connections make snapshots too large.`,
      );
    }
    const kindsBefore = snapshots ? await heapByKind(inspectPort) : null;
    const heapBefore = await readHeap();
    const rssBefore = processRssBytes(server.pid);
    const serverPid = server.pid;
    const cpu0 = processCpuMs(serverPid) ?? 0;
    const lgCpu0 = (await lg.call('cpu', null)).cpuMs;
    const openTimeoutMs = Math.max(60_000, options.connections * 12);
    log(`${system}: opening ${options.connections} connections`);
    const openStart = nowMs();
    const openStartUs = monotonicUs();
    let openDone = false;
    const opening = lg
      .call(
        'open',
        {
          url: `ws://127.0.0.1:${port}/graphql`,
          connections: options.connections,
          concurrency: 200,
          secret: system === 'baseline' ? null : secret,
          timeoutMs: openTimeoutMs,
        },
        openTimeoutMs + 60_000,
      )
      .finally(() => {
        openDone = true;
      });
    let confirmedMs: number | null = null;
    let probeWorks = true;
    await pollUntil(
      async () => {
        const count = await probe.subscriptions().catch(() => null);
        if (count === null) {
          probeWorks = false;
          return openDone;
        }
        if (count >= options.connections) {
          confirmedMs = nowMs() - openStart;
          return true;
        }
        return false;
      },
      openTimeoutMs,
      CONFIRM_POLL_MS,
    );
    const opened = await opening;
    if (confirmedMs === null && probeWorks && opened.subscribed < options.connections) {
      // Some connections failed: wait until the server holds every one that did subscribe.
      await pollUntil(
        async () => {
          const count = await probe.subscriptions().catch(() => null);
          if (count !== null && count >= opened.subscribed) {
            confirmedMs = nowMs() - openStart;
            return true;
          }
          return false;
        },
        10_000,
        CONFIRM_POLL_MS,
      );
    }
    if (system !== 'baseline') windows.open.push([openStartUs, monotonicUs()]);
    const openCpu = (processCpuMs(serverPid) ?? 0) - cpu0;
    const openLgCpu = (await lg.call('cpu', null)).cpuMs - lgCpu0;
    if (!probeWorks)
      notes.push(
        `${label}: the server did not report its subscriptions; open+subscribe is until the last subscribe was sent.`,
      );
    await sleep(options.settleMs);
    const heapAfter = await readHeap();
    const rssAfter = processRssBytes(serverPid);
    if (kindsBefore && opened.subscribed > 0) {
      const kindsAfter = await heapByKind(inspectPort);
      report.heapPerConnectionByKind = [...kindsAfter.values()]
        .map((after) => {
          const before = kindsBefore.get(after.name);
          return {
            kind: after.name,
            objectsPerConnection: round((after.count - (before?.count ?? 0)) / opened.subscribed, 2),
            bytesPerConnection: round((after.bytes - (before?.bytes ?? 0)) / opened.subscribed, 1),
          };
        })
        .filter((kind) => kind.bytesPerConnection >= 1)
        .sort((a, b) => b.bytesPerConnection - a.bytesPerConnection);
    }
    const perConn = (before: number | null, after: number | null) =>
      before === null || after === null || opened.subscribed === 0
        ? null
        : Math.round((after - before) / opened.subscribed);
    const connections: ConnectionReport = {
      requested: options.connections,
      subscribed: opened.subscribed,
      failed: opened.failed,
      firstError: opened.firstError,
      sentMs: Math.round(opened.sentMs),
      confirmedMs: confirmedMs === null ? null : Math.round(confirmedMs),
      confirmedBy: probeWorks ? probe.confirmedBy : 'not reported',
      serverCpuMs: Math.round(openCpu),
      loadgenCpuMs: Math.round(openLgCpu),
      rssBeforeBytes: rssBefore,
      rssAfterBytes: rssAfter,
      rssPerConnectionBytes: perConn(rssBefore, rssAfter),
      heapBeforeBytes: heapBefore,
      heapAfterBytes: heapAfter,
      heapPerConnectionBytes: perConn(heapBefore, heapAfter),
      heapSource: heapAfter === null ? 'not available (RSS only)' : heapSource,
    };
    report.connections = connections;
    log(
      `${system}: ${opened.subscribed}/${options.connections} subscribed; sent ${connections.sentMs} ms, confirmed ${connections.confirmedMs ?? '—'} ms; ` +
        `RSS/conn ${connections.rssPerConnectionBytes ?? '—'} B, heap/conn ${connections.heapPerConnectionBytes ?? '—'} B`,
    );
    if (opened.subscribed === 0)
      throw new Error(`no connection subscribed: ${opened.firstError ?? 'unknown'}`);

    // ---- steps
    let stepNo = 0;
    const snapshot = async (): Promise<CpuSnapshot> => ({
      at: nowMs(),
      server: processCpuMs(serverPid) ?? 0,
      loadgen: (await lg.call('cpu', null)).cpuMs,
      publisher: processCpuMs(publisher?.pid ?? -1) ?? 0,
      redis: await redisCpuMs(redis).catch(() => null),
      machine: machineCpu(),
    });
    const quiet = async () => {
      let last = processCpuMs(serverPid) ?? 0;
      await pollUntil(
        () => {
          const now = processCpuMs(serverPid) ?? 0;
          const busy = now - last;
          last = now;
          return busy < 250 * 0.2;
        },
        options.quietMs,
        250,
      );
    };

    const runStep = async (
      phase: StepReport['phase'],
      rate: number,
      durationS: number,
    ): Promise<StepReport> => {
      const step = ++stepNo;
      let prepareMs = 0;
      if (phase !== 'e2e' && paths.path !== 'publish') {
        const count = Math.max(1, Math.round(rate * durationS));
        const prepared = await pub.call('prepare', { count, maxRate: PREPARE_RATE }, 600_000);
        prepareMs = Math.round(prepared.ms);
        if (prepared.errors > 0)
          log(`${system}: prepare: ${prepared.errors} errors, first: ${prepared.firstError}`);
      }
      await quiet();
      const gcBefore = gc.mark();
      const before = await snapshot();
      const windowStart = monotonicUs();
      const result: RunResult = await pub.call(
        'run',
        {
          step,
          kind: phase === 'e2e' ? 'e2e' : 'fanout',
          rate,
          durationS,
          maxInFlight: paths.path === 'api' || phase === 'e2e' ? 256 : 2_000,
        },
        durationS * 2_000 + 120_000,
      );
      // Events not in by the drain time count as lost (their latency would fail the step anyway).
      await pollUntil(
        async () => (await lg.call('progress', { step })).unique >= result.sent,
        phase === 'e2e' ? options.drainMs * 2 : options.drainMs,
        20,
      );
      const after = await snapshot();
      if (phase !== 'warmup') windows[phase].push([windowStart, monotonicUs()]);
      const gcAfter = gc.mark();
      const receipt: StepReceipt = await lg.call('collect', { step });
      const windowMs = after.at - before.at;
      const pct = (ms: number) => round((ms / windowMs) * 100, 1);
      const serverMs = after.server - before.server;
      const loadgenMs = after.loadgen - before.loadgen;
      const publisherMs = after.publisher - before.publisher;
      const redisMs = before.redis === null || after.redis === null ? null : after.redis - before.redis;
      const machineMs = after.machine.busyMs - before.machine.busyMs;
      const cpu: CpuFigures = {
        serverPercent: pct(serverMs),
        loadgenPercent: pct(loadgenMs),
        publisherPercent: pct(publisherMs),
        redisPercent: redisMs === null ? null : pct(redisMs),
        machinePercent: pct(machineMs),
        otherPercent: pct(Math.max(0, machineMs - serverMs - loadgenMs - publisherMs - (redisMs ?? 0))),
        serverUsPerEvent: receipt.unique > 0 ? round((serverMs * 1000) / receipt.unique, 1) : 0,
      };
      const lost = Math.max(0, result.sent - receipt.unique);
      const failures: string[] = [];
      if (lost > 0) failures.push(`${lost} lost`);
      if (receipt.duplicates > 0) failures.push(`${receipt.duplicates} duplicates`);
      if (receipt.misrouted > 0) failures.push(`${receipt.misrouted} misrouted`);
      if (receipt.latency.p99 > options.maxP99Ms) failures.push(`p99 ${receipt.latency.p99} ms`);
      if (result.errors > 0) failures.push(`${result.errors} send errors (${result.firstError ?? ''})`);
      if (result.notIssued > 0 || result.achievedRate < rate * RATE_TOLERANCE) {
        failures.push(`publisher reached ${Math.round(result.achievedRate)}/s`);
      }
      const stepReport: StepReport = {
        phase,
        step,
        rate,
        durationS,
        target: result.target,
        sent: result.sent,
        notIssued: result.notIssued,
        publishErrors: result.errors,
        firstPublishError: result.firstError,
        achievedRate: Math.round(result.achievedRate),
        delivered: receipt.unique,
        deliveredRate: Math.round((receipt.unique * 1000) / windowMs),
        lost,
        duplicates: receipt.duplicates,
        misrouted: receipt.misrouted,
        latency: receipt.latency,
        slices: receipt.slices,
        windowMs: Math.round(windowMs),
        prepareMs,
        cpu,
        gc: options.traceGc
          ? {
              scavenges: gcAfter.scavenges - gcBefore.scavenges,
              scavengeMs: round(gcAfter.scavengeMs - gcBefore.scavengeMs, 1),
              markCompacts: gcAfter.markCompacts - gcBefore.markCompacts,
              majorPauseMs: round(gcAfter.majorPauseMs - gcBefore.majorPauseMs, 1),
              markingMs: round(gcAfter.markingMs - gcBefore.markingMs, 1),
              longestMs: round(gcAfter.longestMs, 1),
            }
          : null,
        serverRssBytes: processRssBytes(serverPid),
        held: failures.length === 0,
        failures,
        bottleneck: '',
      };
      const named = { ...stepReport, bottleneck: nameBottleneck(stepReport, system) };
      log(
        `${system} ${phase} ${rate}/s: ${receipt.unique}/${result.sent} delivered, p50 ${receipt.latency.p50} p99 ${receipt.latency.p99} max ${receipt.latency.max} ms, ` +
          `server ${cpu.serverPercent}% (${cpu.serverUsPerEvent} µs/ev), loadgen ${cpu.loadgenPercent}%, publisher ${cpu.publisherPercent}%` +
          `${cpu.redisPercent === null ? '' : `, redis ${cpu.redisPercent}%`}, other ${cpu.otherPercent}%` +
          `${named.held ? '' : ` — NOT HELD: ${failures.join('; ')}`}`,
      );
      return named;
    };

    const ramp = async (phase: 'fanout' | 'e2e', rates: readonly number[]) => {
      const steps: StepReport[] = [];
      let failed = false;
      for (const rate of rates) {
        if (failed && (phase === 'e2e' || rate > options.alwaysUpTo)) break;
        if (server?.hasExited()) break;
        const step = await runStep(phase, rate, options.durationS);
        steps.push(step);
        failed ||= !step.held;
      }
      return { steps, held: summarizeHeld(steps, rates) };
    };

    if (options.fanout) {
      if (options.warmupS > 0) {
        report.warmup = await runStep('warmup', Math.min(options.rates[0] ?? 500, 500), options.warmupS);
      }
      const fan = await ramp('fanout', options.rates);
      report.fanout = fan.steps;
      report.fanoutHeld = fan.held;
    }
    if (options.e2e && system !== 'baseline') {
      const e2e = await ramp('e2e', options.e2eRates);
      report.e2e = e2e.steps;
      report.e2eHeld = e2e.held;
    }
    const state = await lg.call('state', null);
    report.loadgen = {
      dropped: state.dropped,
      closeCodes: state.closeCodes,
      late: state.late,
      errorFrames: state.errorFrames,
      completeFrames: state.completeFrames,
      firstErrorFrame: state.firstErrorFrame,
    };
    await lg.call('close', null).catch(() => null);
    await pub.call('close', null).catch(() => null);
  } catch (error) {
    report.error = error instanceof Error ? error.message : String(error);
    log(`${system}: ${report.error}`);
  } finally {
    if (server?.hasExited() && report.error === null) {
      report.error = `server exited during the run:\n${server.stderrTail()}`;
    }
    await cleanup();
    cleanups.splice(cleanups.indexOf(cleanup), 1);
    for (const child of [server, loadgen, publisher]) if (child) children.delete(child);
  }
  if (options.cpuProf && fs.existsSync(profileDir)) {
    // The main thread's profile is the largest (a loader thread, if any, writes one too).
    const [main] = fs
      .readdirSync(profileDir)
      .filter((file) => file.endsWith('.cpuprofile'))
      .map((file) => path.join(profileDir, file))
      .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
    if (main) {
      const scopes: [string, readonly (readonly [number, number])[] | undefined][] = [
        ['opening and subscribing the connections only', windows.open],
        ['fan-out step windows only', windows.fanout],
        ['end-to-end step windows only', windows.e2e],
        ['whole life (start-up, connections, every step)', undefined],
      ];
      for (const [scope, only] of scopes) {
        if (only !== undefined && only.length === 0) continue;
        try {
          report.profiles.push({ scope, summary: summarizeProfile(main, { windows: only }) });
        } catch (error) {
          notes.push(`profile ${main} unreadable: ${String(error)}`);
          break;
        }
      }
      notes.push(`${label}: CPU profile in ${path.relative(process.cwd(), main)}.`);
    }
  }
  return report;
}

/** Names the process whose CPU ran out during `step`, or says that none did. */
function nameBottleneck(step: StepReport, system: SystemName): string {
  const { cpu } = step;
  const processes: [string, number][] = [
    [system === 'baseline' ? 'baseline server' : `service (${system})`, cpu.serverPercent],
    ['load generator', cpu.loadgenPercent],
    ['publisher', cpu.publisherPercent],
    ...(cpu.redisPercent === null ? [] : ([['Redis', cpu.redisPercent]] as [string, number][])),
  ];
  processes.sort((a, b) => b[1] - a[1]);
  const [top] = processes;
  const cores = os.cpus().length;
  if (top && top[1] >= SATURATED_PERCENT) return `${top[0]} CPU (${top[1]}% of a core)`;
  if (cpu.machinePercent >= cores * 100 * 0.9) {
    return `machine CPU (${cpu.machinePercent}% of ${cores * 100}%; other processes ${cpu.otherPercent}%)`;
  }
  return `no process saturated (busiest: ${top?.[0] ?? '—'} ${top?.[1] ?? 0}%; machine ${cpu.machinePercent}% of ${cores * 100}%)`;
}

function summarizeHeld(steps: readonly StepReport[], rates: readonly number[]): HeldSummary {
  let highest = 0;
  for (const step of steps) {
    if (!step.held) break;
    highest = step.rate;
  }
  const failed = steps.find((step) => !step.held);
  const last = steps.at(-1);
  return {
    highestRateHeld: highest,
    endedBy: failed
      ? `${failed.rate}/s not held (${failed.failures.join('; ')})`
      : `every rate up to ${rates.at(-1) ?? 0}/s held (the ramp ended, not the system)`,
    bottleneck: failed?.bottleneck ?? last?.bottleneck ?? '—',
  };
}

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
  if (options.baseline && version) systems.push('baseline');
  else if (options.baseline)
    notes.push('No Redis: the baseline (raw ws + ioredis) was not run, so there are no ratios.');
  fs.mkdirSync(options.out, { recursive: true });
  log(
    `systems ${systems.join(', ')}; ${options.connections} connections, ${options.durationS} s steps, ` +
      `fan-out rates ${options.rates.join(',')}, e2e rates ${options.e2eRates.join(',')}; load average ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`,
  );
  const results: SystemReport[] = [];
  const compiled = await compileServers();
  for (const system of systems) results.push(await runSystem(system, options, notes, compiled));
  notes.push(
    "Fan-out steps time only the completing write: the tasks are created before the step window (their QUEUED events reach the server then), so each measured event is one publish, like the baseline's.",
    'Latency = receive time in the load generator − sentAt stamped by the publisher (same machine clock, performance.timeOrigin + performance.now()). ' +
      'Lost = events the publisher sent successfully that no connection received within the drain time; duplicates = an event number received twice.',
    `Open+subscribe ends when the server reports every subscription in effect (service: the tss_subscriptions_active gauge, incremented once \`taskCompleted\` has subscribed to the bus and read the log cursor; baseline: once Redis confirmed the SUBSCRIBE), polled every ${CONFIRM_POLL_MS} ms (the service: \`/metrics?name=tss_subscriptions_active\`, which renders that gauge alone).`,
    'Memory per connection = (after − before) ÷ subscribed connections, after an idle settle time; heap after a full GC forced through the V8 inspector (each server runs with --inspect on 127.0.0.1), RSS from /proc/<pid>/status VmRSS.',
  );
  const report: BenchReport = {
    version: 1,
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
    for (const child of children) if (!child.hasExited()) child.child.kill('SIGKILL');
    Promise.allSettled(cleanups.map((cleanup) => cleanup())).finally(() => process.exit(130));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  for (const child of children) if (!child.hasExited()) child.child.kill('SIGKILL');
  Promise.allSettled(cleanups.map((cleanup) => cleanup())).finally(() => process.exit(1));
});
