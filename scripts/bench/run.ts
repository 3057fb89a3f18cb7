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
import { Redis } from 'ioredis';
import { freePort, inheritedEnv } from '../lib/local.js';
import { type CompiledServers, compileServers } from './compile-servers.js';
import { CONFIRM_POLL_MS, openConnections } from './connection-phase.js';
import { GcCounter } from './gc-counter.js';
import { renderLatencySvg } from './latency-svg.js';
import { log } from './log.js';
import { type BenchOptions, parseOptions, type SystemName, USAGE } from './options.js';
import { summarizeProfile } from './profile-summary.js';
import type { LoadGenApi, PublisherApi } from './protocol.js';
import { deletePrefix, redisVersion } from './redis-admin.js';
import {
  type BenchReport,
  computeRatios,
  renderMarkdown,
  type ScopedProfile,
  type SystemReport,
} from './report.js';
import { RpcClient } from './rpc.js';
import { baselineProbe, serviceProbe } from './server-probe.js';
import { round } from './stats.js';
import { StepRunner } from './step-runner.js';
import {
  hardFdLimit,
  httpGet,
  machineInfo,
  pollUntil,
  type SpawnedChild,
  spawnNode,
  stopChild,
} from './sys.js';
import { SYSTEM_PATHS } from './system-paths.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
const EVENT_RETENTION = 1_000;

const cleanups: (() => Promise<void>)[] = [];
const children = new Set<SpawnedChild>();

/** Runs one system under test from start to stop; never throws (errors land in the report). */
async function runSystem(
  system: SystemName,
  options: BenchOptions,
  notes: string[],
  compiled: CompiledServers,
): Promise<SystemReport> {
  const label = system === 'baseline' ? 'baseline (raw ws + ioredis)' : `service, ${system} mode`;
  const paths = SYSTEM_PATHS[system];
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

    const opened = await openConnections({
      system,
      label,
      options,
      lg,
      url: `ws://127.0.0.1:${port}/graphql`,
      secret: system === 'baseline' ? null : secret,
      inspectPort,
      probe,
      serverPid: server.pid,
      notes,
    });
    report.connections = opened.connections;
    report.heapPerConnectionByKind = opened.heapPerConnectionByKind;
    if (system !== 'baseline') windows.open.push(opened.window);
    if (opened.connections.subscribed === 0)
      throw new Error(`no connection subscribed: ${opened.connections.firstError ?? 'unknown'}`);

    const running = server;
    const steps = new StepRunner({
      system,
      options,
      fanoutPath: paths.path,
      lg,
      pub,
      serverPid: running.pid,
      publisherPid: publisher.pid,
      redis,
      gc,
      windows,
      serverExited: () => running.hasExited(),
    });
    if (options.fanout) {
      if (options.warmupS > 0) {
        report.warmup = await steps.run('warmup', Math.min(options.rates[0] ?? 500, 500), options.warmupS);
      }
      const fan = await steps.ramp('fanout', options.rates);
      report.fanout = fan.steps;
      report.fanoutHeld = fan.held;
    }
    if (options.e2e && system !== 'baseline') {
      const e2e = await steps.ramp('e2e', options.e2eRates);
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
  if (options.cpuProf) report.profiles.push(...profileScopes(profileDir, windows, label, notes));
  return report;
}

/** Summaries of the server's CPU profile over each phase's windows and over its whole life. */
function profileScopes(
  profileDir: string,
  windows: Record<'open' | 'fanout' | 'e2e', readonly [number, number][]>,
  label: string,
  notes: string[],
): ScopedProfile[] {
  if (!fs.existsSync(profileDir)) return [];
  // The main thread's profile is the largest (a loader thread, if any, writes one too).
  const [main] = fs
    .readdirSync(profileDir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .map((file) => path.join(profileDir, file))
    .sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
  if (!main) return [];
  const profiles: ScopedProfile[] = [];
  const scopes: [string, readonly (readonly [number, number])[] | undefined][] = [
    ['opening and subscribing the connections only', windows.open],
    ['fan-out step windows only', windows.fanout],
    ['end-to-end step windows only', windows.e2e],
    ['whole life (start-up, connections, every step)', undefined],
  ];
  for (const [scope, only] of scopes) {
    if (only !== undefined && only.length === 0) continue;
    try {
      profiles.push({ scope, summary: summarizeProfile(main, { windows: only }) });
    } catch (error) {
      notes.push(`profile ${main} unreadable: ${String(error)}`);
      break;
    }
  }
  notes.push(`${label}: CPU profile in ${path.relative(process.cwd(), main)}.`);
  return profiles;
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
