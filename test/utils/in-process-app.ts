import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { makeTempDir } from '../../scripts/lib/local.js';
import { type App, buildApp, createApp, GRAPHQL_PATH } from '../../src/app.js';
import { mintToken } from '../../src/auth/tokens.js';
import { loadConfig } from '../../src/config.js';
import { deletePrefix, TEST_BACKEND, TEST_REDIS_URL, uniquePrefix } from './redis.js';
import { TEST_SECRET } from './tserver.js';

/** Where {@link InProcessApp.gql} posts; the host is never resolved, `App.fetch` takes the path. */
export const IN_PROCESS_URL = `http://localhost${GRAPHQL_PATH}`;

export interface InProcessResponse<T> {
  readonly status: number;
  readonly headers: Headers;
  readonly data?: T | null;
  readonly errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[];
}

/** A user id no other test uses. */
export function freshUser(label: string): string {
  return `${label}-${randomUUID()}`;
}

/** The only error of a response: fails the test unless there is exactly one. */
export function onlyError(response: { readonly errors?: InProcessResponse<unknown>['errors'] }): {
  message: string;
  extensions: Record<string, unknown>;
} {
  expect(response.errors, JSON.stringify(response.errors)).toHaveLength(1);
  const [error] = response.errors ?? [];
  return { message: error?.message ?? '', extensions: error?.extensions ?? {} };
}

/**
 * The service built without a port and without `start()`: operations go through `App.fetch`,
 * the whole GraphQL pipeline in-process. No workers run, so started tasks stay QUEUED.
 */
export interface InProcessApp {
  readonly app: App;
  /** A token for `userId` (default role user; `service: true` for the service role). */
  token(userId: string, options?: { service?: boolean; expiresIn?: string | number }): Promise<string>;
  /** POSTs a GraphQL operation through `App.fetch` with the token as bearer. */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<InProcessResponse<T>>;
  /**
   * Opens a subscription as Server-Sent Events through `App.fetch` and resolves with its first
   * result, then cancels the stream. Rejects after `timeoutMs` without one.
   */
  firstEvent<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown>,
    token: string,
    timeoutMs?: number,
  ): Promise<{ data?: T | null; errors?: InProcessResponse<T>['errors'] }>;
  /** Stops the app (and, on Redis, deletes its key prefix). Idempotent. */
  stop(): Promise<void>;
}

export interface InProcessAppOptions {
  /** Extra environment, e.g. `{ RATE_LIMIT_START_PER_MINUTE: '2' }`. */
  readonly env?: Record<string, string>;
}

/**
 * Builds the app for the backend TEST_BACKEND names: embedded with a fresh data dir, or the test
 * Redis under a unique key prefix deleted by `stop()`. Call `stop()` in `afterAll`.
 */
export async function createInProcessApp({ env = {} }: InProcessAppOptions = {}): Promise<InProcessApp> {
  const redisPrefix = TEST_BACKEND === 'redis' ? uniquePrefix() : undefined;
  const config = loadConfig({
    AUTH_JWT_SECRET: TEST_SECRET,
    DATA_DIR: makeTempDir(),
    LOG_LEVEL: 'silent',
    ...(redisPrefix ? { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: redisPrefix } : {}),
    ...env,
  });
  const app = redisPrefix ? await createApp({ config }) : buildApp({ config });
  let stopped: Promise<void> | undefined;

  const post = (body: unknown, token: string | null | undefined, accept: string) =>
    app.fetch(IN_PROCESS_URL, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept,
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });

  return {
    app,
    token: (userId, options) => mintToken(TEST_SECRET, userId, options),
    async gql(query, variables, token) {
      const response = await post(
        { query, variables },
        token,
        'application/graphql-response+json, application/json',
      );
      const body = (await response.json()) as Pick<InProcessResponse<never>, 'data' | 'errors'>;
      return { status: response.status, headers: response.headers, ...body };
    },
    async firstEvent(query, variables, token, timeoutMs = 5_000) {
      const response = await post({ query, variables }, token, 'text/event-stream');
      const reader = response.body?.getReader();
      if (!reader) throw new Error(`no event stream (HTTP ${response.status})`);
      const decoder = new TextDecoder();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no event within ${timeoutMs} ms`)), timeoutMs);
      });
      const read = async () => {
        let buffered = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) throw new Error(`event stream ended without an event: ${buffered}`);
          buffered += decoder.decode(value, { stream: true });
          let end = buffered.indexOf('\n\n');
          while (end !== -1) {
            const lines = buffered.slice(0, end).split('\n');
            buffered = buffered.slice(end + 2);
            const event =
              lines
                .find((line) => line.startsWith('event:'))
                ?.slice(6)
                .trim() ?? 'next';
            const data = lines.find((line) => line.startsWith('data:'))?.slice(5);
            if (event === 'next' && data) return JSON.parse(data);
            end = buffered.indexOf('\n\n');
          }
        }
      };
      try {
        return await Promise.race([read(), timeout]);
      } finally {
        clearTimeout(timer);
        await reader.cancel().catch(() => undefined);
      }
    },
    stop() {
      stopped ??= app
        .stop()
        .then(() => (redisPrefix ? deletePrefix(TEST_REDIS_URL, redisPrefix) : undefined));
      return stopped;
    },
  };
}
