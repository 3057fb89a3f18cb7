/**
 * REDIS_COMMAND_TIMEOUT_MS: with the gateway's Redis unreachable (a TCP forwarder that blackholes
 * or refuses), requests answer SERVICE_UNAVAILABLE with Retry-After instead of hanging, the
 * service keeps serving what needs no Redis, and once Redis is back an abandoned start without an
 * idempotency key has not run, while a keyed one is found by repeating it.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../../scripts/lib/local.js';
import { startTcpForwarder, type TcpForwarder } from '../../scripts/lib/tcp-forwarder.js';
import { type App, createApp } from '../../src/app.js';
import { mintToken } from '../../src/auth/tokens.js';
import { RedisKeys } from '../../src/backends/redis/keys.js';
import { createRedisBackend, redisOptionsFromConfig } from '../../src/backends/redis/redis-backend.js';
import { RedisRepository } from '../../src/backends/redis/redis-repository.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { KindRegistry } from '../../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../../src/tasks/kinds/index.js';
import type { Backend } from '../../src/tasks/ports.js';
import { newTask, type Task } from '../../src/tasks/task.js';
import { waitFor } from '../utils/deferred.js';
import { freshUser, IN_PROCESS_URL, type InProcessResponse } from '../utils/in-process-app.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../utils/redis.js';
import { TEST_SECRET } from '../utils/tserver.js';

const kinds = new KindRegistry(BUILT_IN_KINDS);
const logger = createLogger('silent');
const TASK_FIELDS = 'id status result error { code }';
const START = `mutation($kind: String!, $input: JSON, $key: String) {
  startTask(input: { kind: $kind, input: $input, idempotencyKey: $key }) { ${TASK_FIELDS} }
}`;

describe('requests while Redis does not answer (REDIS_COMMAND_TIMEOUT_MS)', () => {
  const prefix = uniquePrefix();
  const redisPort = Number(new URL(TEST_REDIS_URL).port || 6379);
  let refusing = false;
  let forwarder: TcpForwarder;
  let gateway: Backend;
  let app: App;
  let worker: Backend;

  beforeAll(async () => {
    forwarder = await startTcpForwarder(() => (refusing ? null : redisPort));
    const config = loadConfig({
      AUTH_JWT_SECRET: TEST_SECRET,
      DATA_DIR: makeTempDir(),
      LOG_LEVEL: 'silent',
      REDIS_URL: `redis://127.0.0.1:${forwarder.port}`,
      REDIS_KEY_PREFIX: prefix,
      REDIS_COMMAND_TIMEOUT_MS: '500',
    });
    gateway = await createRedisBackend({ ...redisOptionsFromConfig(config), kinds, logger });
    app = await createApp({ config, backend: gateway, logger });
    // The workers reach Redis directly: only the gateway loses it.
    worker = await createRedisBackend({
      url: TEST_REDIS_URL,
      keyPrefix: prefix,
      eventRetention: 1_000,
      kinds,
      logger,
      outboxGraceMs: 1_500,
      outboxSweepMs: 200,
    });
    await worker.startWorkers(2);
  });

  afterAll(async () => {
    refusing = false;
    forwarder?.heal();
    await app?.stop();
    await worker?.close();
    await forwarder?.close();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  async function gql<T>(query: string, variables: Record<string, unknown>, token: string) {
    const response = await app.fetch(IN_PROCESS_URL, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as Pick<InProcessResponse<T>, 'data' | 'errors'>;
    return { status: response.status, headers: response.headers, ...body };
  }

  /** Asserts the answer is SERVICE_UNAVAILABLE with a Retry-After (header and extension). */
  function expectUnavailable(response: Awaited<ReturnType<typeof gql>>, what: string) {
    const codes = (response.errors ?? []).map((error) => error.extensions?.['code']);
    expect(codes, `${what}: ${JSON.stringify(response.errors)}`).toEqual(['SERVICE_UNAVAILABLE']);
    expect(response.status, what).toBe(503);
    expect(Number(response.headers.get('retry-after')), what).toBeGreaterThan(0);
    expect(response.errors?.[0]?.extensions?.['retryAfter'], what).toBeGreaterThan(0);
  }

  async function startOk(token: string, input: unknown, key?: string): Promise<Task> {
    const response = await gql<{ startTask: Task }>(START, { kind: 'echo', input, key }, token);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    if (!response.data) throw new Error('no data');
    return response.data.startTask;
  }

  function untilSucceeded(id: string) {
    return waitFor(
      async () => (await worker.tasks.get(id))?.status === 'SUCCEEDED',
      `task ${id} to succeed`,
      15_000,
    );
  }

  async function ready(): Promise<boolean> {
    return (await gateway.probe()).every((part) => part.ok);
  }

  /**
   * After Redis is back: a marker task runs, the outbox sweepers get time to act on anything
   * left over, and then no task holding `value` has run (none SUCCEEDED or even started).
   */
  async function expectNeverRan(user: string, token: string, value: string) {
    const marker = await startOk(token, { value: 'marker' });
    await untilSucceeded(marker.id);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const { tasks } = await worker.tasks.list({ userId: user, first: 100 });
    const abandoned = tasks.filter((task) => JSON.stringify(task.input) === JSON.stringify({ value }));
    for (const task of abandoned) expect(task).toMatchObject({ status: 'FAILED', attempts: 0 });
  }

  it('should answer SERVICE_UNAVAILABLE while Redis is blackholed, and not run an abandoned key-less start later', async () => {
    const user = freshUser('deadline');
    const token = await mintToken(TEST_SECRET, user);
    const warmUp = await startOk(token, { value: 'warm-up' });
    await untilSucceeded(warmUp.id);

    forwarder.blackhole();
    expectUnavailable(await gql(START, { kind: 'echo', input: { value: 'abandoned' } }, token), 'startTask');
    expectUnavailable(
      await gql(START, { kind: 'echo', input: { value: 'keyed' }, key: 'k-1' }, token),
      'startTask with a key',
    );
    expectUnavailable(
      await gql(
        'mutation($inputs: [StartTaskInput!]!) { startTasks(inputs: $inputs) { __typename } }',
        { inputs: [{ kind: 'echo', input: { value: 'abandoned' } }] },
        token,
      ),
      'startTasks',
    );
    expectUnavailable(await gql('query { tasks { nodes { id } } }', {}, token), 'tasks');
    expectUnavailable(
      await gql('query($id: ID!) { task(id: $id) { id } }', { id: warmUp.id }, token),
      'task',
    );
    expectUnavailable(
      await gql('mutation($id: ID!) { cancelTask(id: $id) { id } }', { id: warmUp.id }, token),
      'cancelTask',
    );
    // What needs no Redis is still answered (every authenticated request reads its user's token
    // revocation, so it needs Redis), and the probe tells load balancers to stay away.
    const anonymous = await app.fetch(IN_PROCESS_URL, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: 'query { taskKinds { name } }' }),
    });
    const { errors } = (await anonymous.json()) as Pick<InProcessResponse<unknown>, 'errors'>;
    expect(errors?.map((error) => error.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
    expect(await ready()).toBe(false);

    forwarder.heal();
    await waitFor(ready, 'the gateway to be ready again', 15_000);
    const repeated = await startOk(token, { value: 'keyed' }, 'k-1');
    await untilSucceeded(repeated.id);
    await expectNeverRan(user, token, 'abandoned');
  }, 60_000);

  it('should answer SERVICE_UNAVAILABLE while Redis refuses connections, and not run that start once it is back', async () => {
    const user = freshUser('down');
    const token = await mintToken(TEST_SECRET, user);
    await untilSucceeded((await startOk(token, { value: 'warm-up' })).id);

    refusing = true;
    forwarder.reset();
    await waitFor(async () => !(await ready()), 'the gateway to see Redis gone', 15_000);
    expectUnavailable(await gql(START, { kind: 'echo', input: { value: 'while-down' } }, token), 'startTask');

    refusing = false;
    await waitFor(ready, 'the gateway to be ready again', 15_000);
    await expectNeverRan(user, token, 'while-down');
  }, 60_000);
});

type Script = (...args: (string | number)[]) => Promise<unknown>;

describe('the create script', () => {
  const prefix = uniquePrefix();
  const keys = new RedisKeys(prefix);
  const client = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
  new RedisRepository({ client, keys, eventRetention: 100 });
  const create = (client as unknown as Record<'tssCreateTask', Script>).tssCreateTask.bind(client);
  afterAll(async () => {
    client.disconnect();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  /** Runs the create script of `task` (no idempotency key) with `deadline`. */
  const run = (task: Task, deadline: number) =>
    create(
      keys.task(task.userId, task.id),
      keys.userIndex(task.userId),
      keys.events(task.userId),
      keys.trimmed(task.userId),
      keys.userIndex(task.userId),
      JSON.stringify(task),
      task.id,
      1,
      100,
      keys.live(task.userId),
      '0',
      Date.now(),
      deadline,
    );

  it('should create nothing when it reaches Redis after the deadline it carries', async () => {
    const task = newTask({ userId: 'late', kind: 'echo', input: { value: 1 }, external: false });
    // A deadline long past by the Redis server's clock.
    expect(await run(task, 1_000)).toEqual([-1, '']);
    expect(await client.exists(keys.task(task.userId, task.id), keys.events(task.userId))).toBe(0);
  });

  it('should create a task without an idempotency key once when the script is re-sent', async () => {
    const task = newTask({ userId: 'resent', kind: 'echo', input: { value: 1 }, external: false });
    const [created] = (await run(task, 0)) as [number, string];
    expect(created).toBe(1);
    // The second run of a re-sent script finds this very task and appends no second event.
    expect(await run(task, 0)).toEqual([0, task.id]);
    expect(await client.xlen(keys.events(task.userId))).toBe(1);
  });
});

describe('a start whose create reaches Redis past its deadline', () => {
  it('should be refused as unavailable and leave nothing of the task behind', async () => {
    const prefix = uniquePrefix();
    const keys = new RedisKeys(prefix);
    const client = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const repository = new RedisRepository({ client, keys, eventRetention: 100, createDeadlineMs: 50 });
      // The script is held up on its way (as by a slow network) past the 50 ms deadline.
      const scripts = client as unknown as Record<'tssCreateTask', Script>;
      const create = scripts.tssCreateTask.bind(client);
      scripts.tssCreateTask = async (...args) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return create(...args);
      };
      const task = newTask({ userId: 'slow', kind: 'echo', input: { value: 1 }, external: false });
      await expect(repository.createMany([task])).rejects.toMatchObject({
        name: 'UnavailableError',
        part: 'store',
      });
      expect(await repository.get(task.id)).toBeNull();
      await waitFor(
        async () =>
          (await client.exists(keys.owner(task.id))) === 0 && (await client.zcard(keys.outbox())) === 0,
        'the owner key and outbox entry to go',
      );
    } finally {
      client.disconnect();
      await deletePrefix(TEST_REDIS_URL, prefix);
    }
  });
});
