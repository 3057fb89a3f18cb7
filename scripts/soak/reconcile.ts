/**
 * The end of a soak: every client's deliveries against the tasks the service reports final: lost,
 * duplicated, out of order, and the delay from a task finishing to a client having it.
 */
import { clientErrors, type Delivery, slots } from './clients.js';
import { diskFullNoticed, type FaultKind, faults } from './faults.js';
import { fleet } from './fleet.js';
import { options, t0 } from './options.js';
import { serviceStats } from './service-calls.js';
import { type ServerTask, started, startFailures, warmUpIds } from './traffic.js';

/** A delivery this long after a fault began counts as "near" it. */
const FAULT_WINDOW_MS = 10_000;

/** Cursors are opaque; they are compared by the numbers they carry (Redis stream ids, sequences). */
function cursorKey(cursor: string): number[] {
  const direct = cursor.match(/\d+/g);
  if (/^\d+(-\d+)?$/.test(cursor) && direct) return direct.map(Number);
  const decoded = Buffer.from(cursor, 'base64url').toString('latin1');
  return (decoded.match(/\d+/g) ?? []).map(Number);
}
function compareCursors(a: string, b: string): number {
  const ka = cursorKey(a);
  const kb = cursorKey(b);
  if (ka.length === 0 || kb.length === 0) return a.localeCompare(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

export interface Stats {
  count: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}
function stats(values: number[]): Stats {
  if (values.length === 0) return { count: 0, p50: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? null };
}

/** What the service reported at the end, per user, and the fault kinds this deployment had. */
export interface Outcome {
  readonly users: readonly string[];
  readonly serverTasks: ReadonlyMap<string, ServerTask[]>;
  readonly notFinal: readonly ServerTask[];
  readonly faultKinds: readonly FaultKind[];
}

/** The final tasks each client's user should have had delivered (warm-up tasks aside). */
export function expectedFinals(outcome: Pick<Outcome, 'users' | 'serverTasks'>) {
  const isFinal = (status: string) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(status);
  const expected = new Map<string, Map<string, ServerTask>>();
  for (const user of outcome.users) {
    const finals = new Map<string, ServerTask>();
    for (const task of outcome.serverTasks.get(user) ?? []) {
      if (isFinal(task.status) && !warmUpIds.has(task.id)) finals.set(task.id, task);
    }
    expected.set(user, finals);
  }
  return expected;
}

/** The soak's report: every figure the test and the note read. */
export async function reconcile({ users, serverTasks, notFinal, faultKinds }: Outcome) {
  const expected = expectedFinals({ users, serverTasks });
  let delivered = 0;
  let expectedDeliveries = 0;
  let lost = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let unexpected = 0;
  let statusMismatch = 0;
  const lossDetails: object[] = [];
  const dupDetails: object[] = [];
  const orderDetails: object[] = [];
  const delays: number[] = [];
  const asleepDelays: number[] = [];
  const byFault = new Map<FaultKind, number[]>(faultKinds.map((kind) => [kind, []]));
  const faultsNear = (at: number) =>
    faults
      .filter((fault) => at >= fault.at - 2_000 && at <= fault.at + fault.durationMs + FAULT_WINDOW_MS)
      .map((fault) => `${fault.kind}@+${((fault.at - t0) / 1000).toFixed(1)}s`);
  for (const slot of slots) {
    const finals = expected.get(slot.user) ?? new Map<string, ServerTask>();
    expectedDeliveries += finals.size;
    for (const [id, task] of finals) {
      if (slot.counts.has(id)) continue;
      lost++;
      const finishedAt = task.finishedAt === null ? Number.NaN : Date.parse(task.finishedAt);
      if (lossDetails.length < 50) {
        lossDetails.push({
          client: slot.name,
          task: id,
          plan: started.get(id)?.plan,
          status: task.status,
          finishedAt: task.finishedAt,
          faultsNear: faultsNear(finishedAt),
          clientSleeps: slot.sleeps.length,
          lastCursor: await slot.cursorStore.get(slot.user),
        });
      }
    }
    for (const [id, count] of slot.counts) {
      delivered++;
      if (count > 1) {
        duplicated += count - 1;
        if (dupDetails.length < 50) {
          const copies = slot.received.filter((d) => d.id === id);
          dupDetails.push({
            client: slot.name,
            task: id,
            plan: started.get(id)?.plan,
            copies: copies.map((d) => ({
              cursor: d.cursor,
              replayed: d.replayed,
              at: new Date(d.at).toISOString(),
              faultsNear: faultsNear(d.at),
            })),
          });
        }
      }
      const task = finals.get(id);
      if (!task) {
        if (!warmUpIds.has(id)) unexpected++;
      } else if (slot.received.find((d) => d.id === id)?.status !== task.status) {
        statusMismatch++;
      }
    }
    let previous: Delivery | null = null;
    for (const delivery of slot.received) {
      if (previous && compareCursors(previous.cursor, delivery.cursor) > 0) {
        outOfOrder++;
        if (orderDetails.length < 20) {
          orderDetails.push({
            client: slot.name,
            after: previous,
            got: delivery,
            faultsNear: faultsNear(delivery.at),
          });
        }
      }
      previous = delivery;
      if (warmUpIds.has(delivery.id) || Number.isNaN(delivery.finishedAt)) continue;
      const ms = Math.max(0, delivery.at - delivery.finishedAt);
      const asleep = slot.sleeps.some(
        (s) => delivery.finishedAt >= s.from - 1_000 && delivery.finishedAt <= s.to,
      );
      if (asleep) {
        asleepDelays.push(ms);
        continue;
      }
      delays.push(ms);
      for (const fault of faults) {
        if (delivery.finishedAt >= fault.at && delivery.finishedAt <= fault.at + FAULT_WINDOW_MS) {
          byFault.get(fault.kind)?.push(ms);
        }
      }
    }
  }

  const completed = [...expected.values()].reduce((sum, finals) => sum + finals.size, 0);
  const byStatus: Record<string, number> = {};
  for (const finals of expected.values())
    for (const task of finals.values()) byStatus[task.status] = (byStatus[task.status] ?? 0) + 1;
  const retried = [...expected.values()].reduce(
    (sum, finals) => sum + [...finals.values()].filter((task) => task.attempts > 1).length,
    0,
  );
  const serverIds = new Set([...serverTasks.values()].flat().map((task) => task.id));
  const missingOnServer = [...started.keys()].filter((id) => !serverIds.has(id));
  const faultCounts = Object.fromEntries(
    faultKinds.map((kind) => [kind, faults.filter((fault) => fault.kind === kind).length]),
  );
  const tokenRefreshes = slots.reduce((sum, slot) => sum + slot.refreshesAfterExpiry, 0);

  return {
    deployment: fleet.deployment,
    options,
    startedAt: new Date(t0).toISOString(),
    wallClockS: Math.round((Date.now() - t0) / 1000),
    users: users.length,
    clients: slots.length,
    started: started.size,
    startFailures: startFailures.length,
    startFailureSamples: startFailures.slice(0, 10),
    completed,
    byStatus,
    retried,
    notFinal: notFinal.length,
    notFinalSamples: notFinal.slice(0, 10),
    missingOnServer: missingOnServer.length,
    expectedDeliveries,
    delivered,
    lost,
    duplicated,
    outOfOrder,
    unexpected,
    statusMismatch,
    delayMs: {
      overall: stats(delays),
      whileClientAsleep: stats(asleepDelays),
      within10sOfFault: Object.fromEntries([...byFault].map(([kind, values]) => [kind, stats(values)])),
    },
    faultCounts,
    /** Per disk-full fault, ms until /readyz reported the store unwritable (null: it never did). */
    diskFullNoticedAfterMs: diskFullNoticed,
    /** Why a fault kind of this deployment could not be injected here (e.g. no permission to mount). */
    faultsSkipped: fleet.diskUnavailable === null ? {} : { 'disk-full': fleet.diskUnavailable },
    crashes: fleet.crashes.length,
    crashDetails: fleet.crashes,
    tokenRefreshesAfterExpiry: tokenRefreshes,
    faults: faults.map((fault) => ({
      kind: fault.kind,
      atS: Number(((fault.at - t0) / 1000).toFixed(1)),
      durationMs: fault.durationMs,
      detail: fault.detail,
    })),
    serviceCalls: serviceStats,
    clientErrors: Object.fromEntries([...clientErrors].sort((a, b) => b[1] - a[1]).slice(0, 20)),
    lossDetails,
    dupDetails,
    orderDetails,
  };
}

export type SoakReport = Awaited<ReturnType<typeof reconcile>>;
