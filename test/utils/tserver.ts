import { afterAll, expect } from 'vitest';
import { makeTempDir } from '../../scripts/lib/local.js';
import { type App, createApp } from '../../src/app.js';
import { mintToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config.js';
import type { TaskKind } from '../../src/tasks/kinds/kind.js';
import { waitFor } from './deferred.js';
import { deletePrefix, TEST_BACKEND, TEST_REDIS_URL, uniquePrefix } from './redis.js';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

export interface TestServer {
  readonly app: App;
  /** http://127.0.0.1:PORT/graphql */
  readonly url: string;
  /** ws://127.0.0.1:PORT/graphql */
  readonly wsUrl: string;
  readonly port: number;
  readonly dataDir: string;
  /** A token for `userId` (default role user; `service: true` for the service role). */
  token(userId: string, options?: { service?: boolean; expiresIn?: string | number }): Promise<string>;
  /** POSTs a GraphQL operation with the token, returns status and parsed body. */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
  stop(): Promise<void>;
}

export interface GraphQLResponse<T> {
  readonly status: number;
  readonly data?: T | null;
  readonly errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[];
}

/**
 * Runs `start` (a `startTask(input: $input)` mutation selecting the caller's fields) as `token`
 * and returns the task; fails the test when the mutation answers with errors.
 */
export async function startTaskWith<T>(
  server: TestServer,
  token: string,
  start: string,
  input: Record<string, unknown>,
): Promise<T> {
  const response = await server.gql<{ startTask: T }>(start, { input }, token);
  expect(response.errors).toBeUndefined();
  const task = response.data?.startTask;
  if (!task) throw new Error('startTask returned no task');
  return task;
}

/** Polls `get` (a `task(id: $id)` query selecting `status`) as `token` until the task has `status`. */
export function waitForTaskStatus<T extends { readonly status: string }>(
  server: TestServer,
  token: string,
  get: string,
  id: string,
  status: string,
): Promise<T> {
  return waitFor(async () => {
    const response = await server.gql<{ task: T | null }>(get, { id }, token);
    return response.data?.task?.status === status ? response.data.task : undefined;
  }, `task ${id} to be ${status}`);
}

/** POSTs a GraphQL operation to `url` with `token` as bearer; returns the status and the body. */
export async function postGraphQL<T>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  token?: string | null,
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

const running = new Set<TestServer>();
afterAll(async () => {
  await Promise.all([...running].map((server) => server.stop()));
});

export { makeTempDir };

export interface TestServerOptions {
  /** Extra environment, e.g. `{ EVENT_RETENTION: '5' }`. */
  readonly env?: Record<string, string>;
  /** Kinds offered, in addition to the built-ins. */
  readonly kinds?: readonly TaskKind[];
  /** Reuse a data directory (restart tests); a fresh temp dir otherwise. */
  readonly dataDir?: string;
}

/**
 * Starts the service on a free port with a fixed secret and a fresh data dir — or, in the redis
 * project (TEST_BACKEND=redis), on the test Redis under a unique key prefix that is deleted when
 * the server stops. Stopped in `afterAll` even if the test forgets.
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const dataDir = options.dataDir ?? makeTempDir();
  const redisPrefix = TEST_BACKEND === 'redis' ? uniquePrefix() : undefined;
  const config = loadConfig({
    PORT: '0',
    AUTH_JWT_SECRET: TEST_SECRET,
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ...(redisPrefix
      ? { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: redisPrefix, WORKER_LOCK_MS: '5000' }
      : {}),
    ...options.env,
  });
  const { BUILT_IN_KINDS } = await import('../../src/tasks/kinds/index.js');
  const app = await createApp({ config, kinds: [...BUILT_IN_KINDS, ...(options.kinds ?? [])] });
  const { url, port } = await app.start();
  let stopped: Promise<void> | undefined;
  const server: TestServer = {
    app,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    port,
    dataDir,
    token: (userId, tokenOptions) => mintToken(TEST_SECRET, userId, tokenOptions),
    gql: (query, variables, token) => postGraphQL(url, query, variables, token),
    stop() {
      running.delete(server);
      stopped ??= app
        .stop()
        .then(() => (redisPrefix ? deletePrefix(TEST_REDIS_URL, redisPrefix) : undefined));
      return stopped;
    },
  };
  running.add(server);
  return server;
}
