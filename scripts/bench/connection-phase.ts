/**
 * The connections phase: the load generator opens N sockets and subscribes each, the orchestrator
 * polls the server until it holds every subscription, and the server's memory per connection is
 * read before and after (heap after a GC forced through the inspector, RSS from /proc).
 */
import { heapAfterGc, heapByKind } from './inspector.js';
import { log } from './log.js';
import type { BenchOptions, SystemName } from './options.js';
import type { LoadGenApi } from './protocol.js';
import type { ConnectionReport, HeapKindPerConnection } from './report-shape.js';
import type { RpcClient } from './rpc.js';
import type { ServerProbe } from './server-probe.js';
import { round } from './stats.js';
import { monotonicUs, nowMs, pollUntil, processCpuMs, processRssBytes, sleep } from './sys.js';

/** How often the open phase asks the server how many subscriptions are in effect. */
export const CONFIRM_POLL_MS = 50;
/** Heap snapshots of more connections than this grow past what one process can parse comfortably. */
const MAX_SNAPSHOT_CONNECTIONS = 2_000;

export interface ConnectionPhaseArgs {
  readonly system: SystemName;
  readonly label: string;
  readonly options: BenchOptions;
  readonly lg: RpcClient<LoadGenApi>;
  /** ws://127.0.0.1:PORT/graphql of the server. */
  readonly url: string;
  /** HS256 secret the load generator mints user tokens with; `null` for the baseline. */
  readonly secret: string | null;
  readonly inspectPort: number;
  readonly probe: ServerProbe;
  readonly serverPid: number;
  /** Sentences for the report's notes. */
  readonly notes: string[];
}

export interface ConnectionPhaseResult {
  readonly connections: ConnectionReport;
  readonly heapPerConnectionByKind: HeapKindPerConnection[] | null;
  /** Monotonic µs interval of the phase, to cut the CPU profile to it. */
  readonly window: [number, number];
}

/** Opens and subscribes `options.connections` sockets (the caller decides what none subscribed means). */
export async function openConnections(args: ConnectionPhaseArgs): Promise<ConnectionPhaseResult> {
  const { system, label, options, lg, probe, serverPid, inspectPort, notes } = args;
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
  const rssBefore = processRssBytes(serverPid);
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
        url: args.url,
        connections: options.connections,
        concurrency: 200,
        secret: args.secret,
        timeoutMs: openTimeoutMs,
        subscribeAs: options.subscribeAs,
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
  const window: [number, number] = [openStartUs, monotonicUs()];
  const openCpu = (processCpuMs(serverPid) ?? 0) - cpu0;
  const openLgCpu = (await lg.call('cpu', null)).cpuMs - lgCpu0;
  if (!probeWorks)
    notes.push(
      `${label}: the server did not report its subscriptions; open+subscribe is until the last subscribe was sent.`,
    );
  await sleep(options.settleMs);
  const heapAfter = await readHeap();
  const rssAfter = processRssBytes(serverPid);
  let heapPerConnectionByKind: HeapKindPerConnection[] | null = null;
  if (kindsBefore && opened.subscribed > 0) {
    const kindsAfter = await heapByKind(inspectPort);
    heapPerConnectionByKind = [...kindsAfter.values()]
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
  log(
    `${system}: ${opened.subscribed}/${options.connections} subscribed; sent ${connections.sentMs} ms, confirmed ${connections.confirmedMs ?? '—'} ms; ` +
      `RSS/conn ${connections.rssPerConnectionBytes ?? '—'} B, heap/conn ${connections.heapPerConnectionBytes ?? '—'} B`,
  );
  return { connections, heapPerConnectionByKind, window };
}
