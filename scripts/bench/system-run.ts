/**
 * One system under test from start to stop: its server (and the end-to-end baseline's worker
 * process), the load generator and the publisher as child processes, the connections phase, the
 * fan-out ramp and one end-to-end ramp per transport, then cleanup (children stopped, data dir and
 * Redis prefix deleted).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, inheritedEnv } from '../lib/local.js';
import { children, cleanups } from './child-registry.js';
import type { CompiledServers } from './compile-servers.js';
import { openConnections } from './connection-phase.js';
import { startBaselineWorker } from './e2e-baseline/worker-process.js';
import { GcCounter } from './gc-counter.js';
import { log } from './log.js';
import type { BenchOptions, SystemName } from './options.js';
import { startOtlpSink } from './otlp-sink.js';
import { summarizeProfile } from './profile-summary.js';
import type { LoadGenApi, PublisherApi } from './protocol.js';
import { deletePrefix } from './redis-admin.js';
import type { E2eRun, ScopedProfile, SystemReport } from './report-shape.js';
import { RpcClient } from './rpc.js';
import { baselineProbe, serviceProbe } from './server-probe.js';
import { StepRunner } from './step-runner.js';
import { hardFdLimit, httpGet, pollUntil, type SpawnedChild, spawnNode, stopChild } from './sys.js';
import { e2eDescription, SYSTEM_PATHS } from './system-paths.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BENCH_DIR = fileURLToPath(new URL('./', import.meta.url));
const EVENT_RETENTION = 1_000;

/** Runs one system under test from start to stop; never throws (errors land in the report). */
export async function runSystem(
  system: SystemName,
  options: BenchOptions,
  notes: string[],
  compiled: CompiledServers,
): Promise<SystemReport> {
  const fanout = options.fanout && (system !== 'baseline' || options.baseline);
  const e2e = options.e2e && (system !== 'baseline' || options.e2eBaseline);
  const label =
    system === 'baseline'
      ? `baseline (${[fanout ? 'raw ws + ioredis' : '', e2e ? 'http → BullMQ → worker → raw ws' : ''].filter(Boolean).join('; ')})`
      : `service, ${system} mode`;
  const paths = SYSTEM_PATHS[system];
  /** Monotonic µs intervals of the measured step windows, to cut the CPU profile to them. */
  const windows = {
    open: [] as [number, number][],
    fanout: [] as [number, number][],
    e2e: [] as [number, number][],
  };
  const report: {
    -readonly [K in keyof SystemReport]: SystemReport[K];
  } & { profiles: ScopedProfile[]; e2e: E2eRun[] } = {
    system,
    label,
    fanoutPath: paths.path,
    fanoutPathDescription: paths.description,
    connections: null,
    warmup: null,
    fanout: [],
    fanoutHeld: null,
    e2e: [],
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
  let worker: SpawnedChild | null = null;
  let serverLog: fs.WriteStream | null = null;
  const sink = options.tracing !== null && system !== 'baseline' ? await startOtlpSink() : null;
  const cleanup = async () => {
    for (const child of [loadgen, publisher, worker]) if (child) await stopChild(child, 'SIGTERM', 5_000);
    if (server) await stopChild(server, 'SIGTERM', options.cpuProf ? 120_000 : 20_000);
    serverLog?.end();
    if (sink) {
      notes.push(
        `${system}: tracing on, sampling ${options.tracing}: ${sink.received.requests} OTLP exports, ` +
          `${Math.round(sink.received.bytes / 1024)} KB, received by the bench's sink.`,
      );
      await sink.close();
    }
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
      Object.assign(env, {
        PORT: String(port),
        REDIS_URL: options.redisUrl,
        REDIS_KEY_PREFIX: prefix,
        JOBS_ENDPOINT: e2e ? '1' : '0',
      });
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
        ...(sink
          ? {
              OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint,
              OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
              OTEL_TRACES_SAMPLER_ARG: String(options.tracing),
            }
          : {}),
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
    if (system === 'baseline' && e2e) {
      worker = await startBaselineWorker({
        file: compiled.baselineWorker,
        redisUrl: options.redisUrl,
        keyPrefix: prefix,
        concurrency: options.workers,
        cwd: REPO_ROOT,
        fdLimit,
        onSpawn: (child) => {
          worker = child;
          children.add(child);
        },
      });
      log(`${system}: worker up (pid ${worker.pid})`);
    }

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
        baselineJobsUrl: system === 'baseline' ? `${base}/tasks` : null,
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
      workerPid: worker?.pid ?? null,
      publisherPid: publisher.pid,
      redis,
      gc,
      windows,
      serverExited: () => running.hasExited(),
    });
    if (fanout) {
      if (options.warmupS > 0) {
        report.warmup = await steps.run('warmup', Math.min(options.rates[0] ?? 500, 500), options.warmupS);
      }
      const fan = await steps.rampFanout(options.rates);
      report.fanout = fan.steps;
      report.fanoutHeld = fan.held;
    }
    // The baseline has one way in, its POST /tasks (the publisher picks it whatever the transport).
    const transports = system === 'baseline' ? (['baseline'] as const) : options.e2eTransports;
    for (const transport of e2e ? transports : []) {
      const ramp = await steps.rampE2e(options.e2eRates, transport === 'baseline' ? 'http' : transport);
      report.e2e.push({ transport, description: e2eDescription(system, transport), ...ramp });
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
    for (const child of [server, loadgen, publisher, worker]) if (child) children.delete(child);
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
