/**
 * Publisher (a child process of run.ts, driven over stdin/stdout): makes completion events for
 * random users at a fixed rate, each stamped with its send time, through one of three paths
 * (see {@link FanoutPath}), and starts echo tasks for the end-to-end runs (see e2e-issuers.ts).
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { mintToken } from '../../src/auth/tokens.js';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { RedisRepository } from '../../src/backends/redis/redis-repository.js';
import { newTask } from '../../src/tasks/task.js';
import { externalFinish } from '../../src/tasks/transitions.js';
import { completionPayload } from './baseline-payload.js';
import { type E2eSenders, planE2e } from './e2e-issuers.js';
import { errorText, GraphqlHttp } from './graphql-http.js';
import { GraphqlWsClient } from './graphql-ws-client.js';
import { JsonHttpClient } from './http-json-client.js';
import { achievedRate, type Outcome, paced } from './pacing.js';
import {
  E2E_WS_SOCKETS,
  type PrepareResult,
  type PublisherApi,
  type PublisherInit,
  type RunArgs,
  type RunResult,
  stamp,
  userId,
} from './protocol.js';
import { serveRpc } from './rpc.js';
import { seededRandom } from './stats.js';
import { nowMs } from './sys.js';

/** GraphQL aliases per prepare request (the service allows 15 per operation by default). */
const ALIASES_PER_REQUEST = 15;
/** Prepare requests in flight at once (api path). */
const PREPARE_CONCURRENCY = 8;

let config: PublisherInit | null = null;
let random: () => number = Math.random;
let redis: Redis | null = null;
let repository: RedisRepository | null = null;
let keys: RedisKeys | null = null;
let serviceToken: string | null = null;
let service: GraphqlHttp | null = null;
let wsClient: Promise<GraphqlWsClient> | null = null;
const http = new JsonHttpClient();
/** Tasks created by `prepare`, completed in order by the next fan-out `run`. */
let prepared: { id: string; user: number }[] = [];

const pickUser = () => Math.floor(random() * (config?.users ?? 1));

function graphql(query: string, variables: Record<string, unknown>) {
  if (!service) return Promise.reject(new Error('publisher has no service URL'));
  return service.request(query, variables);
}

const senders: E2eSenders = {
  get graphql() {
    return service;
  },
  ws: () => {
    const url = config?.graphqlUrl;
    if (!url || !serviceToken) return Promise.reject(new Error('publisher has no service URL'));
    wsClient ??= GraphqlWsClient.open(url.replace(/^http/, 'ws'), serviceToken, E2E_WS_SOCKETS);
    return wsClient;
  },
  http,
  get baselineJobsUrl() {
    return config?.baselineJobsUrl ?? null;
  },
  pickUser,
};

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
  if (arg.secret) {
    serviceToken = await mintToken(arg.secret, 'bench-publisher', { service: true, expiresIn: '6h' });
    if (arg.graphqlUrl) service = new GraphqlHttp(http, arg.graphqlUrl, serviceToken);
  }
  return null;
}

async function prepare({ count, maxRate }: { count: number; maxRate: number }): Promise<PrepareResult> {
  const started = nowMs();
  prepared = [];
  http.refresh();
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

/** What the baseline publishes for a fan-out event: the completion frame's payload. */
function baselinePayload(step: number, n: number, user: number): string {
  return completionPayload(randomUUID(), stamp(step, n, user), n);
}

/** The fan-out step's operations: one event each. */
function fanoutIssuer(
  step: number,
  target: number,
): { total: number; issue: (n: number) => Promise<Outcome> } {
  const path = config?.path;
  if (path === 'publish') {
    const client = redis;
    const k = keys;
    if (!client || !k) throw new Error('not initialised');
    return {
      total: target,
      issue: async (n) => {
        const user = pickUser();
        await client.publish(k.live(userId(user)), baselinePayload(step, n, user));
        return null;
      },
    };
  }
  const tasks = prepared;
  prepared = [];
  const total = Math.min(target, tasks.length);
  if (path === 'repository') {
    const repo = repository;
    if (!repo) throw new Error('not initialised');
    return {
      total,
      issue: async (n) => {
        const task = tasks[n];
        if (!task) return 'no prepared task';
        // The stamp is taken inside the change, right before the script that appends and publishes.
        const event = await repo.transition(task.id, (current) =>
          externalFinish({ result: stamp(step, n, task.user) }, Date.now())(current),
        );
        return event ? null : `task ${task.id} was not completable`;
      },
    };
  }
  return {
    total,
    issue: async (n) => {
      const task = tasks[n];
      if (!task) return 'no prepared task';
      return errorText(await graphql(COMPLETE_TASK, { id: task.id, r: stamp(step, n, task.user) }));
    },
  };
}

async function run({ step, kind, transport, rate, durationS, maxInFlight }: RunArgs): Promise<RunResult> {
  http.refresh();
  const maxIssueMs = durationS * 1000 * 1.25 + 1_000;
  if (kind === 'e2e') {
    const plan = await planE2e(transport ?? 'http', step, rate, durationS, senders);
    const result = await paced(plan.operations, plan.rate, maxInFlight, maxIssueMs, (n) => plan.issue(n));
    return {
      target: plan.tasks,
      sent: result.sent,
      notIssued: Math.max(0, plan.tasks - result.issued * plan.tasksPerOperation),
      errors: result.errors,
      firstError: result.firstError,
      issueMs: result.issueMs,
      elapsedMs: result.elapsedMs,
      achievedRate: achievedRate(result, plan.operations, plan.rate) * plan.tasksPerOperation,
    };
  }
  const target = Math.max(1, Math.round(rate * durationS));
  const { total, issue } = fanoutIssuer(step, target);
  const result = await paced(total, rate, maxInFlight, maxIssueMs, issue);
  return {
    target,
    sent: result.sent,
    notIssued: target - result.issued,
    errors: result.errors,
    firstError: result.firstError,
    issueMs: result.issueMs,
    elapsedMs: result.elapsedMs,
    achievedRate: achievedRate(result, total, rate),
  };
}

const api: PublisherApi = {
  init,
  prepare,
  run,
  close: async () => {
    http.close();
    (await wsClient?.catch(() => null))?.close();
    redis?.disconnect();
    return null;
  },
};
serveRpc(api);
