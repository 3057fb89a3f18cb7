/**
 * The processes of the deployment under soak, as a supervisor would keep them: the Redis
 * deployment (its own redis-server with AOF, three gateways, two workers) or the embedded one (one
 * process, its DATA_DIR on a small disk of its own). A process that dies without a fault killing it
 * is a bug: it is recorded and restarted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { makeTempDir } from '../lib/local.js';
import { type Deployment, log, t0 } from './options.js';
import { gatewayProcess, type Restartable, redisServer, workerProcess } from './procs.js';
import { mountSmallDisk, type SmallDisk } from './small-disk.js';

export const SECRET = 'soak-secret-that-is-long-enough-for-hs256!!';
export const PREFIX = 'soak';
/** The Redis user the gateways connect as: the enqueue-failure fault takes its queue keys away. */
export const GATEWAY_REDIS_USER = 'soak-gateway';
const GATEWAY_REDIS_PASSWORD = 'soak-gateway-password';
/** Size of the embedded deployment's disk: room for a long soak, small enough to fill in a blink. */
const DISK_MB = 256;

export const fleet = {
  deployment: 'redis' as Deployment,
  dataRoot: '',
  redis: null as Restartable | null,
  gateways: [] as Restartable[],
  workers: [] as Restartable[],
  /** Gateways that accept traffic (a killed one leaves it before the SIGKILL, rejoins once healthy). */
  liveGateways: new Set<number>(),
  /** Processes that died without the fault schedule killing them: bugs, restarted like a supervisor would. */
  crashes: [] as { name: string; atS: number; detail: string }[],
  /** The embedded deployment's DATA_DIR filesystem, when it could be mounted. */
  disk: null as SmallDisk | null,
  /** Why there is no {@link fleet.disk} (the disk-full fault is then skipped). */
  diskUnavailable: null as string | null,
};

export const everything = (): Restartable[] => [
  ...(fleet.redis ? [fleet.redis] : []),
  ...fleet.gateways,
  ...fleet.workers,
];

export function livePorts(): number[] {
  return fleet.gateways.filter((g) => fleet.liveGateways.has(g.port)).map((g) => g.port);
}

/** Fault work still going on in the background (a heal scheduled, a client asleep). */
export const heals = new Set<Promise<void>>();

export function background(work: Promise<void>): void {
  const tracked: Promise<void> = work
    .catch((error: unknown) => log(`background fault work failed: ${String(error)}`))
    .finally(() => heals.delete(tracked));
  heals.add(tracked);
}

function supervise(proc: Restartable): void {
  proc.onCrash((detail) => {
    fleet.crashes.push({ name: proc.name, atS: Number(((Date.now() - t0) / 1000).toFixed(1)), detail });
    log(`UNEXPECTED: ${proc.name} ${detail.split('\n')[0]}; restarting it in 1 s`);
    fleet.liveGateways.delete(proc.port);
    background(
      delay(1_000).then(async () => {
        for (let attempt = 0; attempt < 5 && !proc.running; attempt++) {
          try {
            await proc.start();
          } catch (error) {
            log(`restart of ${proc.name} failed: ${String(error).slice(0, 300)}`);
            await delay(1_000);
          }
        }
        if (proc.running && fleet.gateways.includes(proc)) fleet.liveGateways.add(proc.port);
      }),
    );
  });
}

const COMMON_ENV = {
  AUTH_JWT_SECRET: SECRET,
  DRAIN_GRACE_MS: '1000',
  RATE_LIMIT_START_PER_MINUTE: '0',
  MAX_CONNECTIONS_PER_USER: '0',
  MAX_SUBSCRIPTIONS_PER_CONNECTION: '0',
};

async function startRedisDeployment(): Promise<void> {
  fs.mkdirSync(path.join(fleet.dataRoot, 'redis'), { recursive: true });
  const redis = await redisServer(path.join(fleet.dataRoot, 'redis'), [
    '--user',
    GATEWAY_REDIS_USER,
    'on',
    `>${GATEWAY_REDIS_PASSWORD}`,
    '~*',
    '&*',
    '+@all',
  ]);
  fleet.redis = redis;
  await redis.start();
  const shared = {
    ...COMMON_ENV,
    REDIS_KEY_PREFIX: PREFIX,
    WORKER_LOCK_MS: '2000',
  };
  for (let i = 0; i < 3; i++) {
    fleet.gateways.push(
      await gatewayProcess(`gateway-${i + 1}`, {
        ...shared,
        REDIS_URL: `redis://${GATEWAY_REDIS_USER}:${GATEWAY_REDIS_PASSWORD}@127.0.0.1:${redis.port}`,
        DATA_DIR: fs.mkdtempSync(path.join(fleet.dataRoot, 'gw-')),
        WORKER_CONCURRENCY: '0',
        KEEPALIVE_MS: '5000',
      }),
    );
  }
  for (let i = 0; i < 2; i++) {
    fleet.workers.push(
      workerProcess(`worker-${i + 1}`, {
        ...shared,
        REDIS_URL: `redis://127.0.0.1:${redis.port}`,
        DATA_DIR: fs.mkdtempSync(path.join(fleet.dataRoot, 'wk-')),
        WORKER_CONCURRENCY: '32',
      }),
    );
  }
}

async function startEmbeddedDeployment(): Promise<void> {
  const disk = mountSmallDisk(fleet.dataRoot, DISK_MB);
  if ('error' in disk) {
    fleet.diskUnavailable = disk.error;
    log(`no disk of its own for the embedded deployment (${disk.error}): the disk-full fault is skipped`);
  } else fleet.disk = disk;
  fleet.gateways.push(
    await gatewayProcess('embedded', {
      ...COMMON_ENV,
      DATA_DIR: fleet.disk?.dir ?? fs.mkdtempSync(path.join(fleet.dataRoot, 'data-')),
      WORKER_CONCURRENCY: '32',
      KEEPALIVE_MS: '5000',
    }),
  );
}

/** Starts the deployment's processes and supervises them. */
export async function startFleet(deployment: Deployment): Promise<void> {
  fleet.deployment = deployment;
  fleet.dataRoot = makeTempDir('tss-soak-');
  if (deployment === 'redis') await startRedisDeployment();
  else await startEmbeddedDeployment();
  await Promise.all([...fleet.gateways, ...fleet.workers].map((proc) => proc.start()));
  for (const proc of everything()) supervise(proc);
  for (const gateway of fleet.gateways) fleet.liveGateways.add(gateway.port);
  log(
    deployment === 'redis'
      ? 'redis, 3 gateways and 2 workers are up'
      : `the embedded service is up (DATA_DIR ${fleet.disk ? `on a ${DISK_MB} MB tmpfs` : 'on the local disk'})`,
  );
}

/** Kills every process and removes the data (the small disk included). */
export async function stopFleet(): Promise<void> {
  await Promise.all([...fleet.gateways, ...fleet.workers].map((proc) => proc.stop('SIGKILL')));
  await fleet.redis?.stop('SIGKILL');
  fleet.disk?.unmount();
  if (fleet.dataRoot) fs.rmSync(fleet.dataRoot, { recursive: true, force: true });
}

/** SIGKILL without waiting, for the exit handler. */
export function killFleetNow(): void {
  for (const proc of everything()) proc.killNow();
  try {
    fleet.disk?.unmount();
  } catch {
    // exiting anyway
  }
}
