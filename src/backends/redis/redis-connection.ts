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

/**
 * Opens a client (`subscriber: true` for one that will only SUBSCRIBE) that reconnects forever and queues commands while disconnected (so a worker's
 * outcome is written once Redis is back rather than lost).
 */
export function createRedisClient(target: RedisTarget, { subscriber = false } = {}): RedisClient {
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
  };
  if (target.cluster) {
    return new Cluster([...target.nodes], {
      redisOptions: common,
      clusterRetryStrategy: (times) => Math.min(50 * 2 ** times, 2_000),
      enableOfflineQueue: true,
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
