/**
 * Chaos soak (issue 7): `npm run soak -- [--quick] [--duration S] [--users N] [--rate R] [--seed N] [--out DIR]`.
 *
 * On loopback: its own redis-server (AOF), three gateways, two worker processes and a fleet of SDK
 * clients (each behind its own TCP proxy that re-targets a live gateway on reconnect and can
 * blackhole traffic). A steady stream of mixed tasks runs while a seeded fault schedule kills
 * gateways and workers, restarts Redis, blackholes connections, puts clients to sleep and expires
 * tokens. At the end every client reconciles what it received against the tasks that reached a
 * final status. Writes soak-results/report.json and report.md; exits 1 on any lost or duplicated
 * completion, 2 when the soak itself could not run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { mintToken } from '../../src/auth/tokens.js';
import {
  type CursorStore,
  createMemoryCursorStore,
  createTaskClient,
  type TaskClient,
  type TaskCompletedEvent,
} from '../../src/client/index.js';
import { makeTempDir } from '../lib/local.js';
import { startTcpForwarder, type TcpForwarder } from '../lib/tcp-forwarder.js';
import {
  gatewayProcess,
  REPO_ROOT,
  type Restartable,
  redisServer,
  waitUntil,
  workerProcess,
} from './procs.js';

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    users: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  },
});

function intFlag(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`--${name}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const quick = args.quick === true;
const options = {
  quick,
  /** Seconds of traffic under faults (start-up and the final drain come on top). */
  durationS: intFlag('duration', args.duration, quick ? 40 : 300, 10, 86_400),
  users: intFlag('users', args.users, quick ? 60 : 500, 2, 20_000),
  /** Tasks started per second. */
  rate: intFlag('rate', args.rate, quick ? 20 : 80, 1, 5_000),
  seed: intFlag('seed', args.seed, Date.now() % 1_000_000, 0, 2 ** 31 - 1),
  out: path.resolve(REPO_ROOT, args.out ?? 'soak-results'),
};

const SECRET = 'soak-secret-that-is-long-enough-for-hs256!!';
const PREFIX = 'soak';
const KEEPALIVE_MS = 1_000;
const PONG_TIMEOUT_MS = 3_000;
/** A short-lived token (the token-expiry fault) lives this many seconds. */
const SHORT_TOKEN_S = 2;
const FAULT_WINDOW_MS = 10_000;
const FAULT_KINDS = [
  'gateway-kill',
  'worker-kill',
  'redis-restart',
  'blackhole',
  'client-sleep',
  'token-expiry',
] as const;
type FaultKind = (typeof FAULT_KINDS)[number];

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed with --seed. */
function rngFrom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}
const rng = rngFrom(options.seed);
const between = (min: number, max: number) => min + Math.floor(rng() * (max - min + 1));
function pick<T>(items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}
function sample<T>(items: readonly T[], count: number): T[] {
  const pool = [...items];
  const chosen: T[] = [];
  while (chosen.length < count && pool.length > 0) {
    chosen.push(...pool.splice(Math.floor(rng() * pool.length), 1));
  }
  return chosen;
}

const t0 = Date.now();
const log = (message: string) => console.log(`[soak +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);

// ---------------------------------------------------------------------------------------------
// Processes

const dataRoot = makeTempDir('tss-soak-');
fs.mkdirSync(path.join(dataRoot, 'redis'), { recursive: true });
const redis = await redisServer(path.join(dataRoot, 'redis'));
const gateways: Restartable[] = [];
const workers: Restartable[] = [];
/** Gateways that accept traffic (a killed one leaves it before the SIGKILL, rejoins once healthy). */
const liveGateways = new Set<number>();
const everything = (): Restartable[] => [redis, ...gateways, ...workers];

/** Processes that died without the fault schedule killing them: bugs, restarted like a supervisor would. */
const crashes: { name: string; atS: number; detail: string }[] = [];
function supervise(proc: Restartable): void {
  proc.onCrash((detail) => {
    crashes.push({ name: proc.name, atS: Number(((Date.now() - t0) / 1000).toFixed(1)), detail });
    log(`UNEXPECTED: ${proc.name} ${detail.split('\n')[0]}; restarting it in 1 s`);
    liveGateways.delete(proc.port);
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
        if (proc.running && gateways.includes(proc)) liveGateways.add(proc.port);
      }),
    );
  });
}

process.on('exit', () => {
  for (const proc of everything()) proc.killNow();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    for (const proc of everything()) proc.killNow();
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------------------------
// Service calls over HTTP (on behalf of users), retried across gateways through faults

interface GqlError {
  message: string;
  extensions?: { code?: string };
}
interface GqlResponse<T> {
  data?: T | null;
  errors?: GqlError[];
}
/** Codes that are answers, not transient failures: retrying would not change them. */
const FINAL_CODES = new Set(['CONFLICT', 'BAD_USER_INPUT', 'NOT_FOUND', 'FORBIDDEN', 'UNAUTHENTICATED']);

let serviceToken = '';
let nextGateway = 0;
const serviceStats = { calls: 0, retries: 0, gaveUp: 0 };

function livePorts(): number[] {
  return gateways.filter((g) => liveGateways.has(g.port)).map((g) => g.port);
}

async function post<T>(port: number, query: string, variables: object, token: string) {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(10_000),
  });
  if (response.status >= 500) throw new Error(`HTTP ${response.status}`);
  return (await response.json()) as GqlResponse<T>;
}

/**
 * A service-token call to a live gateway, retried (bounded) on network failures and transient
 * errors. Resolves with the data, or with the error code of a final answer (e.g. CONFLICT).
 */
async function serviceCall<T>(query: string, variables: object): Promise<{ data?: T; code?: string }> {
  serviceStats.calls++;
  for (let attempt = 0; attempt < 60; attempt++) {
    if (attempt > 0) {
      serviceStats.retries++;
      await delay(Math.min(2_000, 150 * attempt));
    }
    const ports = livePorts();
    const port = ports[nextGateway++ % Math.max(1, ports.length)];
    if (port === undefined) continue;
    try {
      const body = await post<T>(port, query, variables, serviceToken);
      const code = body.errors?.[0]?.extensions?.code;
      if (body.data && !body.errors?.length) return { data: body.data };
      if (code && FINAL_CODES.has(code)) return { code };
    } catch {
      // refused, reset, timed out: try again, perhaps elsewhere
    }
  }
  serviceStats.gaveUp++;
  return { code: 'GAVE_UP' };
}

// ---------------------------------------------------------------------------------------------
// Clients

interface Delivery {
  readonly id: string;
  readonly status: string;
  readonly cursor: string;
  readonly finishedAt: number;
  readonly at: number;
  readonly replayed: boolean;
}

interface Slot {
  readonly name: string;
  readonly user: string;
  readonly preferred: number;
  readonly cursorStore: CursorStore;
  proxy: TcpForwarder;
  client: TaskClient | null;
  state: 'normal' | 'asleep' | 'blackholed';
  readonly sleeps: { from: number; to: number }[];
  readonly received: Delivery[];
  readonly counts: Map<string, number>;
  /** The next token minted is short-lived (the token-expiry fault). */
  shortNext: boolean;
  /** When the last short-lived token was minted. */
  shortMintedAt: number | null;
  /** Tokens minted after a short-lived one expired: the refreshes the fault asked for. */
  refreshesAfterExpiry: number;
}

const clientErrors = new Map<string, number>();
function noteClientError(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const key = message.slice(0, 100);
  clientErrors.set(key, (clientErrors.get(key) ?? 0) + 1);
}

function openClient(slot: Slot): void {
  const client = createTaskClient({
    url: `http://127.0.0.1:${slot.proxy.port}/graphql`,
    userId: slot.user,
    webSocketImpl: WebSocket,
    keepAliveMs: KEEPALIVE_MS,
    pongTimeoutMs: PONG_TIMEOUT_MS,
    connectTimeoutMs: 5_000,
    retry: { minDelayMs: 200, maxDelayMs: 2_000 },
    cursorStore: slot.cursorStore,
    onError: noteClientError,
    getToken: async () => {
      if (slot.shortMintedAt !== null && Date.now() >= slot.shortMintedAt + SHORT_TOKEN_S * 1000) {
        slot.refreshesAfterExpiry++;
        slot.shortMintedAt = null;
      }
      if (slot.shortNext) {
        slot.shortNext = false;
        slot.shortMintedAt = Date.now();
        return mintToken(SECRET, slot.user, { expiresIn: SHORT_TOKEN_S });
      }
      return mintToken(SECRET, slot.user, { expiresIn: '1h' });
    },
  });
  client.onTaskCompleted((event: TaskCompletedEvent) => {
    const { task } = event;
    slot.received.push({
      id: task.id,
      status: task.status,
      cursor: event.cursor,
      finishedAt: task.finishedAt === null ? Number.NaN : Date.parse(task.finishedAt),
      at: Date.now(),
      replayed: event.replayed,
    });
    slot.counts.set(task.id, (slot.counts.get(task.id) ?? 0) + 1);
  });
  slot.client = client;
}

// ---------------------------------------------------------------------------------------------
// Tasks

type Plan = 'echo' | 'sleep' | 'cancel' | 'external-complete' | 'external-fail';
interface Started {
  readonly id: string;
  readonly user: string;
  readonly plan: Plan;
}
const started = new Map<string, Started>();
const startFailures: string[] = [];
const followUps = new Set<Promise<void>>();
const warmUpIds = new Set<string>();

const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { id status } }`;

async function startOne(index: number, user: string, plan: Plan): Promise<void> {
  const [kind, input]: [string, object] =
    plan === 'echo'
      ? ['echo', { value: { i: index } }]
      : plan === 'sleep'
        ? ['sleep', { ms: between(100, 1_500) }]
        : plan === 'cancel'
          ? ['sleep', { ms: between(4_000, 8_000) }]
          : ['external', { i: index }];
  const result = await serviceCall<{ startTask: { id: string } }>(START, {
    input: { kind, input, userId: user, idempotencyKey: `soak-${options.seed}-${index}` },
  });
  const id = result.data?.startTask.id;
  if (!id) {
    startFailures.push(`task #${index} (${plan}) for ${user}: ${result.code ?? 'no data'}`);
    return;
  }
  started.set(id, { id, user, plan });
  const later = (ms: number, action: () => Promise<unknown>) => {
    const done: Promise<void> = delay(ms)
      .then(action)
      .then(() => undefined)
      .finally(() => followUps.delete(done));
    followUps.add(done);
  };
  if (plan === 'cancel') {
    later(between(200, 2_000), () =>
      serviceCall(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id }),
    );
  } else if (plan === 'external-complete') {
    later(between(100, 1_500), () =>
      serviceCall(`mutation($id: ID!, $r: JSON) { completeTask(id: $id, result: $r) { id } }`, {
        id,
        r: { ok: index },
      }),
    );
  } else if (plan === 'external-fail') {
    later(between(100, 1_500), () =>
      serviceCall(`mutation($id: ID!) { failTask(id: $id, message: "soak failure", code: "SOAK") { id } }`, {
        id,
      }),
    );
  }
}

function choosePlan(): Plan {
  const r = rng();
  if (r < 0.3) return 'echo';
  if (r < 0.6) return 'sleep';
  if (r < 0.72) return 'cancel';
  if (r < 0.88) return 'external-complete';
  return 'external-fail';
}

interface ServerTask {
  id: string;
  status: string;
  finishedAt: string | null;
  attempts: number;
}
const TASKS = `query($userId: ID, $first: Int, $after: String) {
  tasks(userId: $userId, first: $first, after: $after) {
    nodes { id status finishedAt attempts }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface TasksPage {
  tasks: { nodes: ServerTask[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

/** Every task of `user` as the service sees it (bounded: 1000 pages). */
async function tasksOf(user: string): Promise<ServerTask[] | null> {
  const all: ServerTask[] = [];
  let after: string | null = null;
  for (let page = 0; page < 1_000; page++) {
    const result: { data?: TasksPage } = await serviceCall<TasksPage>(TASKS, {
      userId: user,
      first: 100,
      after,
    });
    if (!result.data) return null;
    all.push(...result.data.tasks.nodes);
    const { hasNextPage, endCursor } = result.data.tasks.pageInfo;
    if (!hasNextPage || endCursor === null) return all;
    after = endCursor;
  }
  return all;
}

const isFinalStatus = (status: string) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(status);

// ---------------------------------------------------------------------------------------------
// Faults

interface FaultRecord {
  readonly kind: FaultKind;
  readonly at: number;
  detail: string;
  durationMs: number;
}
const faults: FaultRecord[] = [];
const heals = new Set<Promise<void>>();
const slots: Slot[] = [];

function background(work: Promise<void>): void {
  const tracked: Promise<void> = work
    .catch((error: unknown) => log(`background fault work failed: ${String(error)}`))
    .finally(() => heals.delete(tracked));
  heals.add(tracked);
}

function normalSlots(): Slot[] {
  return slots.filter((slot) => slot.state === 'normal' && slot.client !== null);
}

async function runFault(kind: FaultKind): Promise<void> {
  const record: FaultRecord = { kind, at: Date.now(), detail: '', durationMs: 0 };
  faults.push(record);
  const begun = Date.now();
  switch (kind) {
    case 'gateway-kill': {
      const gateway = pick(gateways.filter((g) => liveGateways.has(g.port)));
      liveGateways.delete(gateway.port);
      const inFlight = slots.filter((s) => s.proxy.open > 0).length;
      await gateway.stop('SIGKILL');
      await delay(between(500, 2_000));
      await gateway.start();
      liveGateways.add(gateway.port);
      record.detail = `SIGKILL ${gateway.name} (port ${gateway.port}), restarted`;
      log(`${record.detail} (${inFlight} clients had connections)`);
      break;
    }
    case 'worker-kill': {
      const worker = pick(workers.filter((w) => w.running));
      // Mid-task: a burst of sleeps right before the kill keeps every worker busy.
      const busyFrom = started.size;
      await worker.stop('SIGKILL');
      await delay(between(500, 2_000));
      await worker.start();
      record.detail = `SIGKILL ${worker.name} (tasks started so far: ${busyFrom}), restarted`;
      log(record.detail);
      break;
    }
    case 'redis-restart': {
      await redis.stop('SIGTERM');
      await delay(between(200, 1_500));
      await redis.start();
      record.detail = `redis-server stopped (SIGTERM) and started on port ${redis.port}`;
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
      const sleepMs = between(5_000, quick ? 8_000 : 15_000);
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

// ---------------------------------------------------------------------------------------------
// Reconciliation and report

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

interface Stats {
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

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<number> {
  log(`options ${JSON.stringify(options)}; data in ${dataRoot}`);
  await redis.start();
  const shared = {
    REDIS_URL: `redis://127.0.0.1:${redis.port}`,
    REDIS_KEY_PREFIX: PREFIX,
    AUTH_JWT_SECRET: SECRET,
    WORKER_LOCK_MS: '2000',
    DRAIN_GRACE_MS: '1000',
  };
  for (let i = 0; i < 3; i++) {
    gateways.push(
      await gatewayProcess(`gateway-${i + 1}`, {
        ...shared,
        DATA_DIR: fs.mkdtempSync(path.join(dataRoot, 'gw-')),
        WORKER_CONCURRENCY: '0',
        RATE_LIMIT_START_PER_MINUTE: '0',
        MAX_CONNECTIONS_PER_USER: '0',
        MAX_SUBSCRIPTIONS_PER_CONNECTION: '0',
        KEEPALIVE_MS: '5000',
      }),
    );
  }
  for (let i = 0; i < 2; i++) {
    workers.push(
      workerProcess(`worker-${i + 1}`, {
        ...shared,
        DATA_DIR: fs.mkdtempSync(path.join(dataRoot, 'wk-')),
        WORKER_CONCURRENCY: '32',
      }),
    );
  }
  await Promise.all([...gateways, ...workers].map((proc) => proc.start()));
  for (const proc of everything()) supervise(proc);
  for (const gateway of gateways) liveGateways.add(gateway.port);
  serviceToken = await mintToken(SECRET, 'soak-service', { service: true, expiresIn: '12h' });
  log('redis, 3 gateways and 2 workers are up');

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
  for (let u = 0; u < users.length; u++) {
    const user = users[u] ?? '';
    const token = await mintToken(SECRET, user, { expiresIn: '1h' });
    const ports = livePorts();
    const viewer = await post<{ viewer: { lastEventCursor: string | null } }>(
      ports[u % ports.length] ?? 0,
      '{ viewer { lastEventCursor } }',
      {},
      token,
    );
    const seed = viewer.data?.viewer.lastEventCursor ?? null;
    const copies = u % 4 === 0 ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const cursorStore = createMemoryCursorStore();
      if (seed !== null) await cursorStore.set(user, seed);
      const preferred = slots.length % gateways.length;
      const slot: Slot = {
        name: `${user}#${c}`,
        user,
        preferred,
        cursorStore,
        proxy: await startTcpForwarder(() => {
          const live = livePorts();
          const mine = gateways[preferred]?.port;
          if (mine !== undefined && live.includes(mine)) return mine;
          return live.length === 0 ? null : (live[Math.floor(Math.random() * live.length)] ?? null);
        }),
        client: null,
        state: 'normal',
        sleeps: [],
        received: [],
        counts: new Map(),
        shortNext: false,
        shortMintedAt: null,
        refreshesAfterExpiry: 0,
      };
      slots.push(slot);
      openClient(slot);
    }
  }
  await waitUntil(
    () => slots.every((slot) => slot.client?.connectionState.get() === 'connected'),
    'every client to connect',
    60_000,
  );
  // Let each feed subscribe (viewer query, then taskCompleted) before traffic starts.
  await delay(2_000);
  log(
    `${slots.length} clients for ${users.length} users connected; traffic and faults for ${options.durationS} s`,
  );

  // Traffic: `rate` tasks a second, at most 200 start calls in flight.
  const trafficEnd = Date.now() + options.durationS * 1000;
  let index = 0;
  let inFlight = 0;
  const traffic = (async () => {
    let credit = 0;
    while (Date.now() < trafficEnd) {
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
    log(`started ${started.size}, delivered ${delivered}, connected ${connected}/${slots.length}`);
  }, 5_000);

  // Faults: every kind once in a seeded order, then seeded random picks, until 8 s before the end.
  const faultLoop = (async () => {
    await delay(3_000);
    const order = sample(FAULT_KINDS, FAULT_KINDS.length);
    // The first round always runs in full, so every kind happens at least once even on a slow machine.
    for (let n = 0; n < 10_000 && (n < order.length || Date.now() < trafficEnd - 8_000); n++) {
      const kind = order[n] ?? pick(FAULT_KINDS);
      try {
        await runFault(kind);
      } catch (error) {
        log(`fault ${kind} failed: ${error instanceof Error ? error.stack : String(error)}`);
        const record = faults.at(-1);
        if (record) record.detail += ` FAILED: ${String(error)}`;
      }
      await delay(quick ? between(1_500, 3_000) : between(3_000, 10_000));
    }
  })();

  await Promise.all([traffic, faultLoop]);
  log('traffic stopped; healing and waiting for every task to be final');
  await Promise.all([...heals]);
  await Promise.all([...followUps]);
  await Promise.all([...heals]);
  await waitUntil(
    () => everything().every((proc) => proc.running) && liveGateways.size === gateways.length,
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
  const notFinal: ServerTask[] = [...serverTasks.values()]
    .flat()
    .filter((task) => !isFinalStatus(task.status));
  log(`tasks final (${notFinal.length} not final); waiting for clients to catch up`);

  const expected = new Map<string, Map<string, ServerTask>>();
  for (const user of users) {
    const finals = new Map<string, ServerTask>();
    for (const task of serverTasks.get(user) ?? []) {
      if (isFinalStatus(task.status) && !warmUpIds.has(task.id)) finals.set(task.id, task);
    }
    expected.set(user, finals);
  }
  const caughtUp = (slot: Slot) => {
    for (const id of expected.get(slot.user)?.keys() ?? []) if (!slot.counts.has(id)) return false;
    return true;
  };
  await waitUntil(() => slots.every(caughtUp), 'clients to catch up', 30_000).catch(() =>
    log('some clients did not catch up within 30 s'),
  );
  await delay(1_000); // a late duplicate would show up here
  clearInterval(progress);

  // Reconcile.
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
  const byFault = new Map<FaultKind, number[]>(FAULT_KINDS.map((kind) => [kind, []]));
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
    FAULT_KINDS.map((kind) => [kind, faults.filter((fault) => fault.kind === kind).length]),
  );
  const tokenRefreshes = slots.reduce((sum, slot) => sum + slot.refreshesAfterExpiry, 0);

  const report = {
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
    crashes: crashes.length,
    crashDetails: crashes,
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
  fs.mkdirSync(options.out, { recursive: true });
  fs.writeFileSync(path.join(options.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(options.out, 'report.md'), markdown(report));
  if (lost > 0 || duplicated > 0 || notFinal.length > 0 || crashes.length > 0) {
    for (const proc of everything()) {
      fs.writeFileSync(path.join(options.out, `${proc.name}.log`), proc.output());
    }
  }
  log(
    `started ${report.started}, completed ${completed}, delivered ${delivered}/${expectedDeliveries}, ` +
      `lost ${lost}, duplicated ${duplicated}, out-of-order ${outOfOrder}, p99 ${report.delayMs.overall.p99} ms; ` +
      `report in ${options.out}`,
  );
  return lost > 0 || duplicated > 0 ? 1 : 0;
}

function fmt(value: number | null): string {
  return value === null ? '–' : String(Math.round(value));
}

function markdown(report: {
  options: typeof options;
  wallClockS: number;
  users: number;
  clients: number;
  started: number;
  completed: number;
  byStatus: Record<string, number>;
  retried: number;
  notFinal: number;
  missingOnServer: number;
  expectedDeliveries: number;
  delivered: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  unexpected: number;
  statusMismatch: number;
  startFailures: number;
  crashes: number;
  tokenRefreshesAfterExpiry: number;
  faultCounts: Record<string, number>;
  delayMs: { overall: Stats; whileClientAsleep: Stats; within10sOfFault: Record<string, Stats> };
}): string {
  const rows = [
    ['overall', report.delayMs.overall],
    ['while the client slept (excluded above)', report.delayMs.whileClientAsleep],
    ...Object.entries(report.delayMs.within10sOfFault).map(
      ([kind, s]) => [`within 10 s of ${kind}`, s] as const,
    ),
  ] as const;
  return [
    `# Soak report (${report.options.quick ? 'quick' : 'long'}, seed ${report.options.seed})`,
    '',
    `${report.users} users, ${report.clients} clients, ${report.options.durationS} s of traffic at ${report.options.rate} tasks/s; ${report.wallClockS} s wall clock.`,
    '',
    '| figure | value |',
    '|---|---|',
    `| started | ${report.started} |`,
    `| start calls that gave up | ${report.startFailures} |`,
    `| completed (final) | ${report.completed} (${Object.entries(report.byStatus)
      .map(([status, n]) => `${status} ${n}`)
      .join(', ')}) |`,
    `| final after more than one attempt (retried) | ${report.retried} |`,
    `| not final at the end | ${report.notFinal} |`,
    `| started but unknown to the service | ${report.missingOnServer} |`,
    `| expected deliveries (final tasks × clients of the user) | ${report.expectedDeliveries} |`,
    `| delivered | ${report.delivered} |`,
    `| **lost** | **${report.lost}** |`,
    `| **duplicated** | **${report.duplicated}** |`,
    `| out of order (cursor) | ${report.outOfOrder} |`,
    `| unexpected (not a final task of the user) | ${report.unexpected} |`,
    `| status differs from the service | ${report.statusMismatch} |`,
    `| processes that crashed by themselves (restarted; see crashDetails) | ${report.crashes} |`,
    `| token refreshes after a short-lived token expired | ${report.tokenRefreshesAfterExpiry} |`,
    '',
    `Faults: ${Object.entries(report.faultCounts)
      .map(([kind, n]) => `${kind} ×${n}`)
      .join(', ')}`,
    '',
    '| delay from finishedAt to a client having it (ms) | n | p50 | p99 | max |',
    '|---|---|---|---|---|',
    ...rows.map(([label, s]) => `| ${label} | ${s.count} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.max)} |`),
    '',
  ].join('\n');
}

let exitCode = 2;
try {
  exitCode = await main();
} catch (error) {
  console.error('[soak] could not complete:', error);
  for (const proc of everything())
    console.error(`--- ${proc.name} (last output)\n${proc.output().slice(-3_000)}`);
} finally {
  await Promise.all(
    slots.map(async (slot) => {
      await slot.client?.dispose().catch(() => undefined);
      await slot.proxy.close();
    }),
  );
  await Promise.all([...gateways, ...workers].map((proc) => proc.stop('SIGKILL')));
  await redis.stop('SIGKILL');
  fs.rmSync(dataRoot, { recursive: true, force: true });
}
process.exit(exitCode);
