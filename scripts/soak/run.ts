/**
 * Chaos soak: `npm run soak -- [--quick] [--mode redis|embedded|both] [--duration S] [--users N]
 * [--rate R] [--seed N] [--out DIR]`.
 *
 * On loopback, a deployment of the service (see fleet.ts: the Redis one with its own
 * redis-server, three gateways and two workers; the embedded one, a single process) and a fleet
 * of SDK clients (clients.ts). A steady stream of mixed tasks (traffic.ts) runs while a seeded
 * schedule injects faults (faults.ts): killed gateways and workers, Redis restarts, failing
 * enqueues after the task was written, a full disk, blackholed connections, sleeping clients,
 * expiring tokens. At the end every client reconciles what it received against the tasks that
 * reached a final status (reconcile.ts). `--mode both` (the default) soaks each deployment in turn,
 * in a process of its own. Writes report.json and report.md to --out; exits 1 on any lost or
 * duplicated completion, 2 when the soak itself could not run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { mintToken } from '../../src/auth/tokens.js';
import { closeClients, openClients, slots } from './clients.js';
import { type FaultKind, faultKindsOf, faults, runFault } from './faults.js';
import { everything, fleet, heals, killFleetNow, SECRET, startFleet, stopFleet } from './fleet.js';
import { between, type Deployment, log, options, pick, sample } from './options.js';
import { REPO_ROOT, waitUntil } from './procs.js';
import { expectedFinals, reconcile, type SoakReport } from './reconcile.js';
import { markdown } from './report-markdown.js';
import { service, serviceCall } from './service-calls.js';
import {
  choosePlan,
  followUps,
  isFinalStatus,
  type ServerTask,
  START,
  startOne,
  tasksOf,
  warmUpIds,
} from './traffic.js';

process.on('exit', killFleetNow);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killFleetNow();
    process.exit(130);
  });
}

/** One deployment under traffic and faults, reconciled. */
async function soak(deployment: Deployment): Promise<SoakReport> {
  await startFleet(deployment);
  const faultKinds = faultKindsOf(deployment);
  service.token = await mintToken(SECRET, 'soak-service', { service: true, expiresIn: '12h' });

  // One finished task per user first, so each user's log has a cursor every client resumes after.
  const users = Array.from({ length: options.users }, (_, i) => `soak-u${i}`);
  await Promise.all(
    users.map(async (user, i) => {
      const result = await serviceCall<{ startTask: { id: string } }>(START, {
        input: { kind: 'echo', input: { value: 'warm-up' }, userId: user, idempotencyKey: `warm-${i}` },
      });
      if (result.data) warmUpIds.add(result.data.startTask.id);
    }),
  );
  await waitUntil(
    async () => {
      for (const user of users.slice(0, 5)) {
        const tasks = await tasksOf(user);
        if (!tasks?.every((task) => isFinalStatus(task.status))) return false;
      }
      return true;
    },
    'warm-up tasks to finish',
    60_000,
  );
  await delay(1_000);
  await openClients(users);
  await waitUntil(
    () => slots.every((slot) => slot.client?.connectionState.get() === 'connected'),
    'every client to connect',
    60_000,
  );
  // Let each feed subscribe (viewer query, then taskCompleted) before traffic starts.
  await delay(2_000);
  log(
    `${slots.length} clients for ${users.length} users connected; traffic and faults (${faultKinds.join(', ')}) for ${options.durationS} s`,
  );

  // Traffic: `rate` tasks a second, at most 200 start calls in flight, for the duration and at least
  // until every fault kind has happened once (each fault then meets traffic).
  const trafficEnd = Date.now() + options.durationS * 1000;
  let firstRoundDone = false;
  let index = 0;
  let inFlight = 0;
  const traffic = (async () => {
    let credit = 0;
    while (Date.now() < trafficEnd || !firstRoundDone) {
      credit += options.rate / 10;
      while (credit >= 1 && inFlight < 200) {
        credit--;
        const i = index++;
        inFlight++;
        void startOne(i, pick(users), choosePlan()).finally(() => inFlight--);
      }
      credit = Math.min(credit, options.rate);
      await delay(100);
    }
    await waitUntil(() => inFlight === 0, 'start calls to settle', 120_000);
  })();

  const progress = setInterval(() => {
    const delivered = slots.reduce((sum, slot) => sum + slot.received.length, 0);
    const connected = slots.filter((slot) => slot.client?.connectionState.get() === 'connected').length;
    log(`started ${index}, delivered ${delivered}, connected ${connected}/${slots.length}`);
  }, 5_000);

  // Faults: every kind once in a seeded order, then seeded random picks, until 8 s before the end.
  const faultLoop = (async () => {
    await delay(3_000);
    const order = sample(faultKinds, faultKinds.length);
    // The first round always runs in full, so every kind happens at least once even on a slow machine.
    for (let n = 0; n < 10_000 && (n < order.length || Date.now() < trafficEnd - 8_000); n++) {
      const kind: FaultKind = order[n] ?? pick(faultKinds);
      try {
        await runFault(kind);
      } catch (error) {
        log(`fault ${kind} failed: ${error instanceof Error ? error.stack : String(error)}`);
        const record = faults.at(-1);
        if (record) record.detail += ` FAILED: ${String(error)}`;
      }
      if (n === order.length - 1) firstRoundDone = true;
      await delay(options.quick ? between(1_500, 3_000) : between(3_000, 10_000));
    }
  })();

  await faultLoop.finally(() => {
    firstRoundDone = true;
  });
  await traffic;
  log('traffic stopped; healing and waiting for every task to be final');
  await Promise.all([...heals]);
  await Promise.all([...followUps]);
  await Promise.all([...heals]);
  await waitUntil(
    () => everything().every((proc) => proc.running) && fleet.liveGateways.size === fleet.gateways.length,
    'every process to run again',
    60_000,
  );

  // Every started task final (bounded), as the service reports it.
  const serverTasks = new Map<string, ServerTask[]>();
  const finalDeadline = Date.now() + 120_000;
  let pendingUsers = [...users];
  while (pendingUsers.length > 0 && Date.now() < finalDeadline) {
    const still: string[] = [];
    for (const user of pendingUsers) {
      const tasks = await tasksOf(user);
      if (tasks === null) {
        still.push(user);
        continue;
      }
      serverTasks.set(user, tasks);
      if (tasks.some((task) => !isFinalStatus(task.status))) still.push(user);
    }
    pendingUsers = still;
    if (pendingUsers.length > 0) await delay(1_000);
  }
  const notFinal = [...serverTasks.values()].flat().filter((task) => !isFinalStatus(task.status));
  log(`tasks final (${notFinal.length} not final); waiting for clients to catch up`);

  const expected = expectedFinals({ users, serverTasks });
  const caughtUp = (slot: (typeof slots)[number]) => {
    for (const id of expected.get(slot.user)?.keys() ?? []) if (!slot.counts.has(id)) return false;
    return true;
  };
  await waitUntil(() => slots.every(caughtUp), 'clients to catch up', 30_000).catch(() =>
    log('some clients did not catch up within 30 s'),
  );
  await delay(1_000); // a late duplicate would show up here
  clearInterval(progress);
  return reconcile({ users, serverTasks, notFinal, faultKinds });
}

function failed(report: Pick<SoakReport, 'lost' | 'duplicated'>): boolean {
  return report.lost > 0 || report.duplicated > 0;
}

/** Soaks one deployment in this process and writes its report. */
async function soakOne(deployment: Deployment): Promise<number> {
  log(`options ${JSON.stringify(options)}; ${deployment} deployment`);
  let exitCode = 2;
  try {
    const report = await soak(deployment);
    fs.mkdirSync(options.out, { recursive: true });
    fs.writeFileSync(path.join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
    fs.writeFileSync(path.join(options.out, 'report.md'), markdown(report));
    if (failed(report) || report.notFinal > 0 || report.crashes > 0) {
      for (const proc of everything()) {
        fs.writeFileSync(path.join(options.out, `${proc.name}.log`), proc.output());
      }
    }
    log(
      `${deployment}: started ${report.started}, completed ${report.completed}, delivered ${report.delivered}/${report.expectedDeliveries}, ` +
        `lost ${report.lost}, duplicated ${report.duplicated}, out-of-order ${report.outOfOrder}, p99 ${report.delayMs.overall.p99} ms; ` +
        `report in ${options.out}`,
    );
    exitCode = failed(report) ? 1 : 0;
  } catch (error) {
    console.error('[soak] could not complete:', error);
    for (const proc of everything())
      console.error(`--- ${proc.name} (last output)\n${proc.output().slice(-3_000)}`);
  } finally {
    await closeClients();
    await stopFleet();
  }
  return exitCode;
}

/** Arguments of this run minus `--mode` and `--out` (with their values), for a child soak. */
function passedOn(): string[] {
  const rest: string[] = [];
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--mode' || arg === '--out') i++;
    else if (!arg.startsWith('--mode=') && !arg.startsWith('--out=')) rest.push(arg);
  }
  return rest;
}

/** Soaks each deployment in a child process of its own, then writes the reports side by side. */
async function soakEach(): Promise<number> {
  const reports: SoakReport[] = [];
  let exitCode = 0;
  for (const deployment of options.modes) {
    const out = path.join(options.out, deployment);
    const code = await new Promise<number>((resolve) => {
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'scripts/soak/run.ts',
          ...passedOn(),
          '--seed',
          String(options.seed),
          '--mode',
          deployment,
          '--out',
          out,
        ],
        { cwd: REPO_ROOT, stdio: 'inherit' },
      );
      child.once('exit', (exit) => resolve(exit ?? 2));
    });
    exitCode = Math.max(exitCode, code);
    const file = path.join(out, 'report.json');
    if (fs.existsSync(file)) reports.push(JSON.parse(fs.readFileSync(file, 'utf8')) as SoakReport);
  }
  const sum = (pick: (report: SoakReport) => number) => reports.reduce((n, r) => n + pick(r), 0);
  const combined = {
    deployments: Object.fromEntries(reports.map((report) => [report.deployment, report])),
    lost: sum((r) => r.lost),
    duplicated: sum((r) => r.duplicated),
    notFinal: sum((r) => r.notFinal),
  };
  fs.mkdirSync(options.out, { recursive: true });
  fs.writeFileSync(path.join(options.out, 'report.json'), `${JSON.stringify(combined, null, 2)}\n`);
  fs.writeFileSync(path.join(options.out, 'report.md'), reports.map(markdown).join('\n'));
  if (reports.length < options.modes.length) return 2;
  return exitCode;
}

const [only] = options.modes;
process.exit(options.modes.length === 1 && only ? await soakOne(only) : await soakEach());
