/**
 * Publisher (a child process of run.ts, driven over stdin/stdout): makes completion events for
 * random users at a fixed rate, each stamped with its send time, through one of three paths
 * (see {@link FanoutPath}), and starts echo tasks through the API for the end-to-end runs.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { Redis } from 'ioredis';
import { mintToken } from '../../src/auth/tokens.js';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisRepository } from '../../src/backends/redis/redis-repository.js';
import { newTask } from '../../src/tasks/task.js';
import { externalFinish } from '../../src/tasks/transitions.js';
import {
  type BenchStamp,
  type PrepareResult,
  type PublisherApi,
  type PublisherInit,
  type RunArgs,
  type RunResult,
  userId,
} from './protocol.js';
import { serveRpc } from './rpc.js';
import { seededRandom } from './stats.js';
import { nowMs } from './sys.js';

/** GraphQL aliases per prepare request (the service allows 15 per operation by default). */
const ALIASES_PER_REQUEST = 15;
/** Prepare requests in flight at once (api path). */
const PREPARE_CONCURRENCY = 8;
/** Upper bound on the wait for replies after the last send. */
const REPLY_TIMEOUT_MS = 30_000;

let config: PublisherInit | null = null;
let random: () => number = Math.random;
let redis: Redis | null = null;
let repository: RedisRepository | null = null;
let keys: RedisKeys | null = null;
let serviceToken: string | null = null;
/**
 * Keep-alive HTTP connections to the service, replaced before each phase: between phases they sit
 * idle longer than the server's keep-alive timeout, and a request on a socket the server is closing
 * fails with ECONNRESET.
 */
const newAgent = () =>
  // Idle sockets go before the server's 5 s keep-alive timeout would close them under a request.
  new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4_000 });
let agent = newAgent();
function freshAgent(): void {
  agent.destroy();
  agent = newAgent();
}
/** Tasks created by `prepare`, completed in order by the next fan-out `run`. */
let prepared: { id: string; user: number }[] = [];

const pickUser = () => Math.floor(random() * (config?.users ?? 1));
const stamp = (s: number, n: number, u: number): { bench: BenchStamp } => ({
  bench: { t: nowMs(), s, n, u },
});

interface GraphQLReply {
  readonly data?: Record<string, unknown> | null;
  readonly errors?: readonly { message: string }[];
}

/**
 * POSTs one GraphQL operation to the service with the service token. A request that fails on a
 * reused keep-alive socket the server had just closed never reached it, and is sent once more.
 */
async function graphql(query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
  try {
    return await post(query, variables);
  } catch (error) {
    if (error instanceof StaleSocketError) return post(query, variables);
    throw error;
  }
}

class StaleSocketError extends Error {}

function post(query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
  const url = config?.graphqlUrl;
  if (!url || !serviceToken) return Promise.reject(new Error('publisher has no service URL'));
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${serviceToken}`,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          try {
            const reply = JSON.parse(text) as GraphQLReply;
            if (response.statusCode !== 200 && !reply.errors) {
              reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`));
            } else resolve(reply);
          } catch {
            reject(new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`));
          }
        });
        response.on('error', reject);
      },
    );
    request.setTimeout(REPLY_TIMEOUT_MS, () => request.destroy(new Error('request timed out')));
    request.on('error', (error: NodeJS.ErrnoException) => {
      const stale =
        request.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up');
      reject(stale ? new StaleSocketError(error.message) : error);
    });
    request.end(body);
  });
}

function errorText(reply: GraphQLReply): string | null {
  return reply.errors && reply.errors.length > 0 ? (reply.errors[0]?.message ?? 'error') : null;
}

interface PaceResult {
  issued: number;
  sent: number;
  errors: number;
  firstError: string | null;
  issueMs: number;
  elapsedMs: number;
}

/**
 * Issues `total` operations at `rate` per second (in 1 ms ticks), at most `maxInFlight` awaiting a
 * reply; gives up issuing after `maxIssueMs` (the rest count as not issued) and waiting for replies
 * after {@link REPLY_TIMEOUT_MS} more.
 */
function paced(
  total: number,
  rate: number,
  maxInFlight: number,
  maxIssueMs: number,
  issue: (n: number) => Promise<string | null>,
): Promise<PaceResult> {
  const started = nowMs();
  const result: PaceResult = { issued: 0, sent: 0, errors: 0, firstError: null, issueMs: 0, elapsedMs: 0 };
  let inFlight = 0;
  return new Promise((resolve) => {
    let issuing = true;
    let waitTimer: NodeJS.Timeout | undefined;
    const maybeDone = () => {
      if (issuing || inFlight > 0) return;
      clearTimeout(waitTimer);
      result.elapsedMs = nowMs() - started;
      resolve(result);
    };
    const onReply = (error: string | null) => {
      inFlight--;
      if (error === null) result.sent++;
      else {
        result.errors++;
        result.firstError ??= error;
      }
      maybeDone();
    };
    const tick = () => {
      const elapsed = nowMs() - started;
      const due = Math.min(total, Math.floor((elapsed * rate) / 1000) + 1);
      while (result.issued < due && inFlight < maxInFlight) {
        const n = result.issued++;
        inFlight++;
        issue(n).then(onReply, (error: unknown) =>
          onReply(error instanceof Error ? error.message : String(error)),
        );
      }
      if (result.issued >= total || elapsed >= maxIssueMs) {
        issuing = false;
        result.issueMs = nowMs() - started;
        waitTimer = setTimeout(() => {
          result.errors += inFlight;
          result.firstError ??= `${inFlight} replies missing after ${REPLY_TIMEOUT_MS} ms`;
          inFlight = 0;
          maybeDone();
        }, REPLY_TIMEOUT_MS);
        maybeDone();
        return;
      }
      setTimeout(tick, 1);
    };
    tick();
  });
}

async function init(arg: PublisherInit): Promise<null> {
  config = arg;
  random = seededRandom(arg.seed);
  if (arg.redisUrl) {
    redis = new Redis(arg.redisUrl, { maxRetriesPerRequest: 3, lazyConnect: true });
    await redis.connect();
  }
  if (arg.path === 'repository') {
    if (!redis || !arg.keyPrefix) throw new Error('repository path needs redisUrl and keyPrefix');
    keys = new RedisKeys(arg.keyPrefix);
    repository = new RedisRepository({ client: redis, keys, eventRetention: arg.eventRetention });
  }
  if (arg.path === 'publish') {
    if (!redis || !arg.keyPrefix) throw new Error('publish path needs redisUrl and keyPrefix');
    keys = new RedisKeys(arg.keyPrefix);
  }
  if (arg.secret)
    serviceToken = await mintToken(arg.secret, 'bench-publisher', { service: true, expiresIn: '6h' });
  return null;
}

async function prepare({ count, maxRate }: { count: number; maxRate: number }): Promise<PrepareResult> {
  const started = nowMs();
  prepared = [];
  freshAgent();
  if (config?.path === 'publish') return { prepared: 0, errors: 0, ms: 0, firstError: null };
  const users = Array.from({ length: count }, pickUser);
  if (config?.path === 'repository') {
    const repo = repository;
    if (!repo) throw new Error('not initialised');
    const created: ({ id: string; user: number } | undefined)[] = new Array(count);
    const result = await paced(count, maxRate, 500, 600_000, async (n) => {
      const user = users[n] ?? 0;
      const task = newTask({ userId: userId(user), kind: 'external', input: {}, external: true });
      await repo.createMany([task]);
      created[n] = { id: task.id, user };
      return null;
    });
    prepared = created.filter((entry): entry is { id: string; user: number } => entry !== undefined);
    return {
      prepared: prepared.length,
      errors: result.errors,
      ms: nowMs() - started,
      firstError: result.firstError,
    };
  }
  // api: startTask of the external kind on behalf of each user, 15 per request.
  const batches = Math.ceil(count / ALIASES_PER_REQUEST);
  const created: ({ id: string; user: number } | undefined)[] = new Array(count);
  const result = await paced(
    batches,
    maxRate / ALIASES_PER_REQUEST,
    PREPARE_CONCURRENCY,
    600_000,
    async (b) => {
      const first = b * ALIASES_PER_REQUEST;
      const last = Math.min(count, first + ALIASES_PER_REQUEST);
      const fields: string[] = [];
      for (let n = first; n < last; n++) {
        fields.push(
          `a${n - first}: startTask(input: { kind: "external", userId: "${userId(users[n] ?? 0)}", input: {} }) { id }`,
        );
      }
      const reply = await graphql(`mutation Prepare { ${fields.join(' ')} }`, {});
      const error = errorText(reply);
      if (error !== null) return error;
      for (let n = first; n < last; n++) {
        const field = reply.data?.[`a${n - first}`] as { id?: unknown } | undefined;
        if (typeof field?.id === 'string') created[n] = { id: field.id, user: users[n] ?? 0 };
      }
      return null;
    },
  );
  prepared = created.filter((entry): entry is { id: string; user: number } => entry !== undefined);
  return {
    prepared: prepared.length,
    errors: result.errors,
    ms: nowMs() - started,
    firstError: result.firstError,
  };
}

const COMPLETE_TASK = 'mutation Complete($id: ID!, $r: JSON) { completeTask(id: $id, result: $r) { id } }';
const START_TASK = 'mutation Start($i: StartTaskInput!) { startTask(input: $i) { id } }';

/** What the baseline publishes: the `payload` of the frame the service would send for the event. */
function baselinePayload(step: number, n: number, user: number): string {
  const now = Date.now();
  const result = stamp(step, n, user);
  return JSON.stringify({
    data: {
      taskCompleted: {
        cursor: `${now}-${n}`,
        replayed: false,
        task: { id: randomUUID(), status: 'SUCCEEDED', result, finishedAt: new Date(now).toISOString() },
      },
    },
  });
}

async function run({ step, kind, rate, durationS, maxInFlight }: RunArgs): Promise<RunResult> {
  const path = config?.path;
  const target = Math.max(1, Math.round(rate * durationS));
  freshAgent();
  let issue: (n: number) => Promise<string | null>;
  let total = target;
  if (kind === 'e2e') {
    issue = async (n) => {
      const user = pickUser();
      const reply = await graphql(START_TASK, {
        i: { kind: 'echo', userId: userId(user), input: { value: stamp(step, n, user) } },
      });
      return errorText(reply);
    };
  } else if (path === 'publish') {
    const client = redis;
    const k = keys;
    if (!client || !k) throw new Error('not initialised');
    issue = async (n) => {
      const user = pickUser();
      await client.publish(k.live(userId(user)), baselinePayload(step, n, user));
      return null;
    };
  } else {
    const tasks = prepared;
    prepared = [];
    total = Math.min(target, tasks.length);
    if (path === 'repository') {
      const repo = repository;
      if (!repo) throw new Error('not initialised');
      issue = async (n) => {
        const task = tasks[n];
        if (!task) return 'no prepared task';
        // The stamp is taken inside the change, right before the script that appends and publishes.
        const event = await repo.transition(task.id, (current) =>
          externalFinish({ result: stamp(step, n, task.user) }, Date.now())(current),
        );
        return event ? null : `task ${task.id} was not completable`;
      };
    } else {
      issue = async (n) => {
        const task = tasks[n];
        if (!task) return 'no prepared task';
        return errorText(await graphql(COMPLETE_TASK, { id: task.id, r: stamp(step, n, task.user) }));
      };
    }
  }
  const result = await paced(total, rate, maxInFlight, durationS * 1000 * 1.25 + 1_000, issue);
  return {
    target,
    sent: result.sent,
    notIssued: target - result.issued,
    errors: result.errors,
    firstError: result.firstError,
    issueMs: result.issueMs,
    elapsedMs: result.elapsedMs,
    // n events paced at r/s span (n - 1) / r seconds.
    achievedRate: result.issued > 1 && result.issueMs > 0 ? ((result.issued - 1) * 1000) / result.issueMs : 0,
  };
}

const api: PublisherApi = {
  init,
  prepare,
  run,
  close: async () => {
    agent.destroy();
    redis?.disconnect();
    return null;
  },
};
serveRpc(api);
