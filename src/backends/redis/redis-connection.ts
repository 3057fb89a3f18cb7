import { Cluster, Redis, type RedisOptions } from 'ioredis';

export type RedisClient = Redis | Cluster;

/** Redis could not be reached at start-up. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

interface RedisTarget {
  readonly cluster: boolean;
  readonly nodes: readonly { host: string; port: number }[];
  readonly options: RedisOptions;
  readonly display: string;
}

/**
 * Parses `REDIS_URL`: one `redis://[user:pass@]host:port[/db]` for a single server, or a
 * comma-separated list of nodes (`redis://h1:7000,redis://h2:7001` or `redis://h1:7000,h2:7001`)
 * for a Redis Cluster. `rediss://` turns on TLS.
 */
export function parseRedisUrl(url: string, forceCluster = false): RedisTarget {
  const parts = url
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
  const first = new URL(parts[0] ?? '');
  const options: RedisOptions = {};
  if (first.username) options.username = decodeURIComponent(first.username);
  if (first.password) options.password = decodeURIComponent(first.password);
  if (first.protocol === 'rediss:') options.tls = {};
  const db = first.pathname.replace('/', '');
  if (db) options.db = Number(db);
  const nodes = parts.map((part) => {
    const parsed = new URL(/^rediss?:\/\//.test(part) ? part : `${first.protocol}//${part}`);
    return { host: parsed.hostname, port: Number(parsed.port || 6379) };
  });
  const display = nodes.map((node) => `${node.host}:${node.port}`).join(',');
  return { cluster: forceCluster || nodes.length > 1, nodes, options, display };
}

/** How {@link createRedisClient} opens a client. */
export interface RedisClientOptions {
  /** A client that will only SUBSCRIBE. @default false */
  readonly subscriber?: boolean;
  /**
   * Greater than 0: a client for requests, which fails fast instead of waiting for Redis. A command
   * not answered within this many ms is rejected ("Command timed out"); while disconnected a
   * command is rejected at once instead of waiting in the offline queue; and commands left
   * unanswered by a dropped connection are not sent again after the reconnect. (ioredis leaves a
   * timed-out command in its offline queue and re-sends unanswered ones on reconnect, so a command
   * timeout alone would still run an abandoned request's writes later.) 0: the client waits for
   * Redis as long as it takes, which is what workers want for their outcome writes. @default 0
   */
  readonly commandTimeoutMs?: number;
}

/**
 * Opens a client that reconnects forever. By default it queues commands while disconnected (so a
 * worker's outcome is written once Redis is back rather than lost); see
 * {@link RedisClientOptions.commandTimeoutMs} for a client that fails fast instead.
 */
export function createRedisClient(
  target: RedisTarget,
  { subscriber = false, commandTimeoutMs = 0 }: RedisClientOptions = {},
): RedisClient {
  const failFast = commandTimeoutMs > 0;
  const common: RedisOptions = {
    ...target.options,
    maxRetriesPerRequest: null,
    // The ready check sends INFO, which a connection in subscriber mode refuses after a
    // reconnect ("only subscriber commands may be used"): that failure took gateways down.
    enableReadyCheck: !subscriber,
    retryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
    // What one turn of the event loop sends goes out as one write (per node on a cluster): the
    // commands of concurrent requests, and those a caller sends together, share a round trip.
    enableAutoPipelining: !subscriber,
    ...(failFast
      ? { commandTimeout: commandTimeoutMs, enableOfflineQueue: false, autoResendUnfulfilledCommands: false }
      : {}),
  };
  if (target.cluster) {
    return new Cluster([...target.nodes], {
      redisOptions: common,
      clusterRetryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
      enableOfflineQueue: !failFast,
    });
  }
  const [node] = target.nodes;
  return new Redis({ ...common, host: node?.host, port: node?.port });
}

/** Resolves when `client` is ready; throws {@link RedisUnavailableError} after `timeoutMs`. */
export async function waitUntilReady(client: RedisClient, display: string, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  let lastError: Error | undefined;
  const onError = (error: Error) => {
    lastError = error;
  };
  client.on('error', onError);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new RedisUnavailableError(
            `REDIS_URL: no answer from ${display} within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}`,
          ),
        );
      }, timeoutMs);
      client.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } finally {
    client.off('error', onError);
  }
}
