import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll } from 'vitest';
import { durableRedisArgs, freePort, makeTempDir } from '../../scripts/lib/local.js';
import { waitFor } from './deferred.js';

const execFileAsync = promisify(execFile);

/** A `redis-server` owned by one test file, on its own free port and data directory. */
export interface RedisServer {
  readonly port: number;
  /** Data directory (AOF files, cluster config); kept across {@link stop} and {@link start}. */
  readonly dir: string;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  /** Whether the process is up (between start and exit). */
  readonly running: boolean;
  /** Starts (again) on the same port and directory; resolves once PING answers PONG. */
  start(): Promise<void>;
  /** Graceful stop (SIGTERM: Redis flushes the AOF and exits); resolves once the process is gone. */
  stop(): Promise<void>;
  /** {@link stop}, then {@link start} on the same port and directory. */
  restart(): Promise<void>;
  /** SIGKILL, no flush. Resolves once the process is gone. */
  kill(): Promise<void>;
  /** What the process wrote so far (all runs). */
  output(): string;
}

export interface RedisServerOptions {
  /** Cluster mode: `--cluster-enabled yes --cluster-config-file <dir>/nodes-<port>.conf`. */
  readonly cluster?: boolean;
}

const owned = new Set<RedisServer>();
afterAll(async () => {
  await Promise.all([...owned].map((server) => server.kill()));
  for (const server of owned) fs.rmSync(server.dir, { recursive: true, force: true });
  owned.clear();
});

/** Sends PING over a raw socket; true when the answer is +PONG (not -LOADING, not refused). */
export function pingRedis(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
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
 * Starts a `redis-server` on a free port with an append-only file fsynced on every write, so that
 * a stop followed by a start on the same port and directory keeps every acknowledged write.
 * Killed in `afterAll` whatever the test does.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = makeTempDir('tss-redis-');
  const args = [
    ...durableRedisArgs(port, dir),
    ...(options.cluster
      ? [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          path.join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '5000',
        ]
      : []),
  ];
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let out = '';

  const server: RedisServer = {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== null;
    },
    async start() {
      if (child) throw new Error(`redis-server on port ${port} is already running`);
      const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      proc.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
      });
      proc.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
      });
      exited = new Promise<void>((resolve) => {
        proc.once('exit', () => {
          if (child === proc) child = null;
          resolve();
        });
        proc.once('error', (error) => {
          out += `\n[spawn error] ${error.message}`;
          if (child === proc) child = null;
          resolve();
        });
      });
      await waitFor(
        async () => {
          if (child !== proc) throw new Error(`redis-server on port ${port} exited at start:\n${out}`);
          return pingRedis(port);
        },
        `redis-server on port ${port} to answer PING`,
        15_000,
      );
    },
    async stop() {
      child?.kill('SIGTERM');
      await exited;
    },
    async restart() {
      await server.stop();
      await server.start();
    },
    async kill() {
      child?.kill('SIGKILL');
      await exited;
    },
    output: () => out,
  };
  owned.add(server);
  await server.start();
  return server;
}

/** A local Redis Cluster of three masters without replicas. */
export interface RedisTestCluster {
  readonly nodes: readonly RedisServer[];
  /** The REDIS_URL form listing every node: `redis://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`. */
  readonly url: string;
  stop(): Promise<void>;
}

async function redisCli(args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync('redis-cli', [...args], { timeout: 30_000 });
  return stdout;
}

/**
 * Starts three cluster-enabled masters on free ports, joins them with `redis-cli --cluster create`
 * (slots split three ways) and waits until every node reports `cluster_state:ok`.
 */
export async function startCluster(): Promise<RedisTestCluster> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 3; i++) nodes.push(await startRedisServer({ cluster: true }));
  const addresses = nodes.map((node) => `127.0.0.1:${node.port}`);
  await redisCli(['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes']);
  for (const node of nodes) {
    await waitFor(
      async () => (await redisCli(['-p', String(node.port), 'cluster', 'info'])).includes('cluster_state:ok'),
      `cluster node ${node.port} to report cluster_state:ok`,
      20_000,
    );
  }
  return {
    nodes,
    url: `redis://${addresses.join(',')}`,
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}
