import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';
import { freePort, inheritedEnv, makeTempDir } from '../../scripts/lib/local.js';
import { mintToken } from '../../src/auth/tokens.js';
import { waitFor } from './deferred.js';
import type { GraphQLResponse } from './tserver.js';
import { postGraphQL } from './tserver.js';

/** The repository root, where `src/main.ts` lives. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The key child servers verify tokens with, unless started without one. */
export const CHILD_SECRET = 'child-server-secret-that-is-at-least-32-bytes!';

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A spawned `node --import tsx src/main.ts`, whether or not it came up. */
export interface ChildProcessHandle {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dataDir: string;
  /** Everything the process wrote to stdout so far. */
  stdout(): string;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Whether the process has exited. */
  readonly exited: boolean;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once the process has exited (at once if it already has). */
  waitExit(): Promise<ExitStatus>;
}

/** A child that answers `/healthz`. */
export interface ChildServer extends ChildProcessHandle {
  /** http://127.0.0.1:PORT/graphql */
  readonly url: string;
  /** ws://127.0.0.1:PORT/graphql */
  readonly wsUrl: string;
  /** A token signed with {@link CHILD_SECRET} (meaningless for a child started with `auth: false`). */
  token(userId: string, options?: { service?: boolean }): Promise<string>;
  /** POSTs a GraphQL operation with `token` as bearer. */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
}

export interface ChildOptions {
  /** Reuse a data directory (restarts); a fresh temp dir otherwise. */
  readonly dataDir?: string;
  /** A specific port; a free one otherwise. */
  readonly port?: number;
  /** `false` starts without any AUTH_* variable (dev tokens, or refusal in production). @default true */
  readonly auth?: boolean;
  /** Extra environment, e.g. `{ WORKER_CONCURRENCY: '1' }`. */
  readonly env?: Record<string, string>;
  /** Entry point, relative to the repository root. @default 'src/main.ts' */
  readonly entry?: 'src/main.ts' | 'src/worker.ts';
}

const children = new Set<ChildProcessHandle>();
afterAll(async () => {
  await Promise.all(
    [...children].map(async (handle) => {
      if (!handle.exited) handle.kill('SIGKILL');
      await handle.waitExit();
    }),
  );
  children.clear();
});

export { freePort };

/** Spawns the real entry point; does not wait for it to listen (see {@link startChildServer}). */
export async function spawnChild(options: ChildOptions = {}): Promise<ChildProcessHandle> {
  const port = options.port ?? (await freePort());
  const dataDir = options.dataDir ?? makeTempDir('tss-child-');
  const env = inheritedEnv();
  Object.assign(
    env,
    {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      NODE_ENV: 'development',
    },
    options.auth === false ? {} : { AUTH_JWT_SECRET: CHILD_SECRET },
    options.env,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', options.entry ?? 'src/main.ts'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  let exitStatus: ExitStatus | null = null;
  const exit = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
    child.once('error', (error) => {
      err += `\n[spawn error] ${error.message}`;
      exitStatus = { code: null, signal: null };
      resolve(exitStatus);
    });
  });
  const handle: ChildProcessHandle = {
    child,
    port,
    dataDir,
    stdout: () => out,
    stderr: () => err,
    get exited() {
      return exitStatus !== null;
    },
    kill(signal = 'SIGTERM') {
      if (exitStatus === null) child.kill(signal);
    },
    async waitExit() {
      const status = await exit;
      // Let the last chunks of output arrive before callers read them.
      await new Promise<void>((resolve) => {
        if (child.stdout?.readableEnded !== false && child.stderr?.readableEnded !== false) resolve();
        else child.once('close', () => resolve());
      });
      return status;
    },
  };
  children.add(handle);
  return handle;
}

/** Spawns the real entry point and waits until `/healthz` answers; fails with its output if it exits. */
export async function startChildServer(options: ChildOptions = {}): Promise<ChildServer> {
  const handle = await spawnChild(options);
  const base = `http://127.0.0.1:${handle.port}`;
  await waitFor(
    async () => {
      if (handle.exited) {
        const status = await handle.waitExit();
        throw new Error(
          `child server exited before answering /healthz (code ${status.code}, signal ${status.signal})\n` +
            `stdout:\n${handle.stdout()}\nstderr:\n${handle.stderr()}`,
        );
      }
      try {
        const response = await fetch(`${base}/healthz`);
        return response.ok;
      } catch {
        return false;
      }
    },
    `child server on port ${handle.port} to answer /healthz`,
    20_000,
  );
  const url = `${base}/graphql`;
  return Object.assign(handle, {
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    token: (userId: string, tokenOptions?: { service?: boolean }) =>
      mintToken(CHILD_SECRET, userId, tokenOptions),
    gql: <T>(query: string, variables?: Record<string, unknown>, token?: string | null) =>
      postGraphQL<T>(url, query, variables, token),
  });
}

/**
 * Spawns `src/worker.ts` (the `npm run worker` process: runs queued tasks, serves nothing) and
 * waits for its "worker started" log line, so its BullMQ worker and its cancellation subscription
 * are in effect. Logs at `info` unless `env.LOG_LEVEL` says otherwise (the line is logged at info).
 */
export async function startChildWorker(
  options: Omit<ChildOptions, 'entry' | 'port' | 'auth'> = {},
): Promise<ChildProcessHandle> {
  const handle = await spawnChild({
    ...options,
    entry: 'src/worker.ts',
    env: { LOG_LEVEL: 'info', ...options.env },
  });
  await waitFor(
    async () => {
      if (handle.exited) {
        const status = await handle.waitExit();
        throw new Error(
          `worker exited before starting (code ${status.code}, signal ${status.signal})\n` +
            `stdout:\n${handle.stdout()}\nstderr:\n${handle.stderr()}`,
        );
      }
      return handle.stderr().includes('"msg":"worker started"');
    },
    'the worker process to log "worker started"',
    20_000,
  );
  return handle;
}
