/**
 * Processes the soak owns: a redis-server (AOF) on a free port, gateways and workers spawned from
 * the real entry points. Standalone (no vitest hooks), so the soak can run outside the test runner.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { durableRedisArgs, freePort, inheritedEnv } from '../lib/local.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Polls `check` every 100 ms until it returns true or `timeoutMs` passes (then throws). */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await delay(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Keeps the last `limit` characters written by a stream. */
class Tail {
  #text = '';
  constructor(readonly limit = 64_000) {}
  push(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > this.limit * 2) this.#text = this.#text.slice(-this.limit);
  }
  get text(): string {
    return this.#text.slice(-this.limit);
  }
}

/** A process that can be killed and started again with the same arguments. */
export interface Restartable {
  readonly name: string;
  readonly port: number;
  readonly running: boolean;
  start(): Promise<void>;
  /** Sends `signal` and resolves once the process is gone. */
  stop(signal: NodeJS.Signals): Promise<void>;
  /** Recent output, for the report when something goes wrong. */
  output(): string;
  /** SIGKILL without waiting (for the soak's exit handler). */
  killNow(): void;
  /** Called when the process exits without {@link stop} having been asked: a crash. */
  onCrash(listener: (detail: string) => void): void;
}

interface Spec {
  readonly name: string;
  readonly port: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  /** Resolves true once the process is ready. */
  readonly ready: (output: string) => Promise<boolean>;
}

function restartable(spec: Spec): Restartable {
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let stopping = false;
  const crashListeners: ((detail: string) => void)[] = [];
  const tail = new Tail();
  /** Output of the current run, from its start (capped): what `ready` looks at. */
  let sinceStart = '';
  const record = (chunk: string) => {
    tail.push(chunk);
    if (sinceStart.length < 262_144) sinceStart += chunk;
  };
  return {
    name: spec.name,
    port: spec.port,
    get running() {
      return child !== null;
    },
    async start() {
      if (child) throw new Error(`${spec.name} is already running`);
      const proc = spawn(spec.command, [...spec.args], {
        cwd: REPO_ROOT,
        env: spec.env ?? process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = proc;
      stopping = false;
      sinceStart = '';
      proc.stdout?.setEncoding('utf8').on('data', record);
      proc.stderr?.setEncoding('utf8').on('data', record);
      exited = new Promise<void>((resolve) => {
        proc.once('exit', (code, signal) => {
          tail.push(`\n[soak] ${spec.name} exited (code ${code}, signal ${signal})\n`);
          const crashed = child === proc && !stopping;
          if (child === proc) child = null;
          resolve();
          if (crashed) {
            const detail = `exited by itself (code ${code}, signal ${signal}); last output:\n${tail.text.slice(-2_000)}`;
            for (const listener of crashListeners) listener(detail);
          }
        });
        proc.once('error', (error) => {
          tail.push(`\n[soak] spawn error: ${error.message}\n`);
          if (child === proc) child = null;
          resolve();
        });
      });
      await waitUntil(
        async () => {
          if (child !== proc) throw new Error(`${spec.name} exited while starting:\n${tail.text}`);
          return spec.ready(sinceStart);
        },
        `${spec.name} to be ready`,
        30_000,
      );
    },
    async stop(signal) {
      stopping = true;
      child?.kill(signal);
      await exited;
    },
    output: () => tail.text,
    killNow() {
      stopping = true;
      child?.kill('SIGKILL');
    },
    onCrash(listener) {
      crashListeners.push(listener);
    },
  };
}

/** Sends PING over a raw socket; true when the answer is +PONG. */
export function pingRedis(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/**
 * redis-server with an AOF fsynced on every write, so a stop + start keeps every acknowledged write;
 * `extraArgs` are appended (e.g. `--user` lines, which a restart keeps as they are arguments).
 */
export async function redisServer(dir: string, extraArgs: readonly string[] = []): Promise<Restartable> {
  const port = await freePort();
  return restartable({
    name: 'redis',
    port,
    command: 'redis-server',
    args: [...durableRedisArgs(port, dir), ...extraArgs],
    ready: () => pingRedis(port),
  });
}

function childEnv(extra: Record<string, string>): Record<string, string> {
  return { ...inheritedEnv(), HOST: '127.0.0.1', NODE_ENV: 'development', ...extra };
}

/** `node --import tsx src/main.ts` on a fixed port (kept across restarts); ready when /healthz answers. */
export async function gatewayProcess(name: string, env: Record<string, string>): Promise<Restartable> {
  const port = await freePort();
  return restartable({
    name,
    port,
    command: process.execPath,
    args: ['--import', 'tsx', 'src/main.ts'],
    env: childEnv({ LOG_LEVEL: 'warn', ...env, PORT: String(port) }),
    async ready() {
      try {
        return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok;
      } catch {
        return false;
      }
    },
  });
}

/** `node --import tsx src/worker.ts`; ready once it logs "worker started". */
export function workerProcess(name: string, env: Record<string, string>): Restartable {
  return restartable({
    name,
    port: 0,
    command: process.execPath,
    args: ['--import', 'tsx', 'src/worker.ts'],
    env: childEnv({ LOG_LEVEL: 'info', ...env }),
    ready: async (output) => output.includes('"msg":"worker started"'),
  });
}
