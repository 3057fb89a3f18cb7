/**
 * The faults the soak injects, each recorded with when it began and how long it took. Which kinds
 * a deployment gets: {@link faultKindsOf}.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { openClient, PONG_TIMEOUT_MS, SHORT_TOKEN_S, type Slot, slots } from './clients.js';
import { background, fleet, GATEWAY_REDIS_USER, PREFIX } from './fleet.js';
import { between, type Deployment, log, options, pick, sample } from './options.js';
import { started } from './traffic.js';

export const FAULT_KINDS = [
  'gateway-kill',
  'worker-kill',
  'redis-restart',
  'blackhole',
  'client-sleep',
  'token-expiry',
  'enqueue-failure',
  'disk-full',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The fault kinds that apply to the deployment under soak (disk-full only with a disk of its own). */
export function faultKindsOf(deployment: Deployment): FaultKind[] {
  if (deployment === 'redis') {
    return FAULT_KINDS.filter((kind) => kind !== 'disk-full');
  }
  return FAULT_KINDS.filter(
    (kind) =>
      !['worker-kill', 'redis-restart', 'enqueue-failure'].includes(kind) &&
      (kind !== 'disk-full' || fleet.disk !== null),
  );
}

interface FaultRecord {
  readonly kind: FaultKind;
  readonly at: number;
  detail: string;
  durationMs: number;
}
export const faults: FaultRecord[] = [];
/** Per disk-full fault, how long the service took to report its store unwritable (null: never). */
export const diskFullNoticed: (number | null)[] = [];

/** Polls the service's /readyz until it answers 503; ms that took, or null after `timeoutMs`. */
async function untilNotReady(port: number, timeoutMs: number): Promise<number | null> {
  const begun = Date.now();
  while (Date.now() - begun < timeoutMs) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.status === 503) return Date.now() - begun;
    } catch {
      // not answering is not the answer looked for: keep polling
    }
    await delay(200);
  }
  return null;
}

function normalSlots(): Slot[] {
  return slots.filter((slot) => slot.state === 'normal' && slot.client !== null);
}

/** Sends one command to the soak's redis-server as its default (all-powerful) user. */
async function redisAdmin(...command: [string, ...string[]]): Promise<void> {
  const admin = new Redis({ port: fleet.redis?.port, lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await admin.connect();
    await admin.call(...command);
  } finally {
    admin.disconnect();
  }
}

export async function runFault(kind: FaultKind): Promise<void> {
  const record: FaultRecord = { kind, at: Date.now(), detail: '', durationMs: 0 };
  faults.push(record);
  const begun = Date.now();
  switch (kind) {
    case 'gateway-kill': {
      const gateway = pick(fleet.gateways.filter((g) => fleet.liveGateways.has(g.port)));
      fleet.liveGateways.delete(gateway.port);
      const inFlight = slots.filter((s) => s.proxy.open > 0).length;
      await gateway.stop('SIGKILL');
      await delay(between(500, 2_000));
      await gateway.start();
      fleet.liveGateways.add(gateway.port);
      record.detail = `SIGKILL ${gateway.name} (port ${gateway.port}), restarted`;
      log(`${record.detail} (${inFlight} clients had connections)`);
      break;
    }
    case 'worker-kill': {
      const worker = pick(fleet.workers.filter((w) => w.running));
      const busyFrom = started.size;
      await worker.stop('SIGKILL');
      await delay(between(500, 2_000));
      await worker.start();
      record.detail = `SIGKILL ${worker.name} (tasks started so far: ${busyFrom}), restarted`;
      log(record.detail);
      break;
    }
    case 'redis-restart': {
      const redis = fleet.redis;
      if (!redis) throw new Error('no redis-server in this deployment');
      await redis.stop('SIGTERM');
      await delay(between(200, 1_500));
      await redis.start();
      record.detail = `redis-server stopped (SIGTERM) and started on port ${redis.port}`;
      log(record.detail);
      break;
    }
    case 'enqueue-failure': {
      // The gateways keep their task keys but lose the queue's ({prefix:q}…): each start writes its
      // task, then its BullMQ add fails (NOPERM), the way a failing enqueue after the write looks.
      const holdMs = between(2_000, 4_000);
      await redisAdmin('ACL', 'SETUSER', GATEWAY_REDIS_USER, 'resetkeys', `~${PREFIX}:*`);
      const before = started.size;
      await delay(holdMs);
      await redisAdmin('ACL', 'SETUSER', GATEWAY_REDIS_USER, '~*');
      record.detail = `gateways could not add jobs for ${holdMs} ms (tasks started meanwhile: ${started.size - before})`;
      log(record.detail);
      break;
    }
    case 'disk-full': {
      const disk = fleet.disk;
      const service = fleet.gateways[0];
      if (!disk || !service) throw new Error('no disk of its own in this deployment');
      // SQLite writes into the room its write-ahead log already has, so a full disk shows only once
      // that is used up: the disk stays full until the service says so on /readyz (then 2 s more),
      // at least 3 s and at most 30 s.
      const filled = disk.fill();
      const noticedAfterMs = await untilNotReady(service.port, 30_000);
      await delay(noticedAfterMs === null ? 0 : Math.max(2_000, 3_000 - noticedAfterMs));
      disk.free();
      diskFullNoticed.push(noticedAfterMs);
      record.detail =
        `DATA_DIR's filesystem full (${Math.round(filled / 1_048_576)} MB of filler) for ${Date.now() - begun} ms; ` +
        (noticedAfterMs === null
          ? '/readyz never said so within 30 s'
          : `/readyz said so after ${noticedAfterMs} ms`);
      log(record.detail);
      break;
    }
    case 'blackhole': {
      const chosen = sample(normalSlots(), Math.max(1, Math.round(slots.length * 0.05)));
      for (const slot of chosen) {
        slot.state = 'blackholed';
        slot.proxy.blackhole();
      }
      const holdMs = between(PONG_TIMEOUT_MS + 2_000, PONG_TIMEOUT_MS + 6_000);
      record.detail = `blackholed ${chosen.length} client connections for ${holdMs} ms`;
      log(record.detail);
      background(
        delay(holdMs).then(() => {
          for (const slot of chosen) {
            slot.proxy.heal();
            slot.state = 'normal';
          }
        }),
      );
      break;
    }
    case 'client-sleep': {
      const chosen = sample(normalSlots(), Math.max(1, Math.round(slots.length * 0.05)));
      const sleepMs = between(5_000, options.quick ? 8_000 : 15_000);
      for (const slot of chosen) slot.state = 'asleep';
      await Promise.all(
        chosen.map(async (slot) => {
          const client = slot.client;
          slot.client = null;
          slot.sleeps.push({ from: Date.now(), to: Number.POSITIVE_INFINITY });
          await client?.dispose();
        }),
      );
      record.detail = `${chosen.length} clients disposed for ${sleepMs} ms, then recreated with their cursor store`;
      log(record.detail);
      background(
        delay(sleepMs).then(() => {
          for (const slot of chosen) {
            const sleep = slot.sleeps.at(-1);
            if (sleep) sleep.to = Date.now();
            openClient(slot);
            slot.state = 'normal';
          }
        }),
      );
      break;
    }
    case 'token-expiry': {
      const chosen = sample(normalSlots(), Math.max(2, Math.round(slots.length * 0.1)));
      for (const slot of chosen) {
        slot.shortNext = true;
        slot.proxy.reset();
      }
      record.detail = `${chosen.length} clients cut and handed ${SHORT_TOKEN_S} s tokens on reconnect`;
      log(record.detail);
      break;
    }
  }
  record.durationMs = Date.now() - begun;
}
