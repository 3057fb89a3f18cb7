import path from 'node:path';
import { ConfigError, type Env, readBool, readDuration, readInt, readOptionalPort } from './env-values.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

/**
 * Claims a token must carry besides `sub` and `exp`, checked when set; tokens minted by the service
 * (`npm run token`, dev tokens) carry them.
 */
export interface TokenClaims {
  /** `AUTH_ISSUER`: the one accepted `iss`. */
  readonly issuer?: string | undefined;
  /** `AUTH_AUDIENCE`: accepted `aud` values; a token must name at least one. */
  readonly audience?: readonly string[] | undefined;
}

/** How tokens are verified. `ephemeral` only exists outside production, when no key is configured. */
export type AuthConfig = (
  | { readonly mode: 'secret'; readonly secret: string; readonly ephemeral: boolean }
  | { readonly mode: 'jwks'; readonly jwksUrl: URL }
  | { readonly mode: 'public-key'; readonly publicKeyPem: string }
) &
  TokenClaims;

/** The service's whole configuration, read once from the environment by {@link loadConfig}. */
export interface Config {
  /** @default 4000 */
  readonly port: number;
  /** @default '127.0.0.1' */
  readonly host: string;
  /** Unset: embedded mode (SQLite + in-process bus and runner). */
  readonly redisUrl: string | undefined;
  /** Prefix of every Redis key and channel, so several deployments can share one Redis. @default 'tss' */
  readonly redisKeyPrefix: string;
  /** How long start-up waits for Redis before giving up. @default 10000 */
  readonly redisConnectTimeoutMs: number;
  /** BullMQ lock: a killed worker's task is picked up by another after about this long. @default 30000 */
  readonly workerLockMs: number;
  /**
   * How long a request waits for a Redis command before it fails with SERVICE_UNAVAILABLE (and
   * `Retry-After`) instead of hanging while Redis is unreachable. @default 5000
   */
  readonly redisCommandTimeoutMs: number;
  /**
   * Age (ms since it finished) after which a finished task and its events are purged; 0 keeps
   * them forever. Read from `TASK_RETENTION` as `30d`, `12h`, `90m`, `45s`, `0` or `off`. @default 30 days
   */
  readonly taskRetentionMs: number;
  /**
   * Tasks of one user running at once across the deployment; 0: no cap. @default a fair share
   * of this process's workers: half of `WORKER_CONCURRENCY`, at least 1
   */
  readonly maxRunningPerUser: number;
  /** Where the embedded store keeps its SQLite file. @default './data' */
  readonly dataDir: string;
  readonly auth: AuthConfig;
  /**
   * Origins allowed for CORS and WebSocket upgrades (`*`: any, without credentials). Empty: any
   * origin outside production; in production none but the service's own.
   */
  readonly corsOrigins: readonly string[];
  /** Server ping interval; a peer that has not answered the previous ping by then is dropped. @default 12000 */
  readonly keepAliveMs: number;
  /** Time a socket may take to send `connection_init`. @default 3000 */
  readonly connectionInitTimeoutMs: number;
  /** Tasks run at once by this process. @default 4 */
  readonly workerConcurrency: number;
  /** @default 'info' */
  readonly logLevel: LogLevel;
  /** Events kept per user in the event log; older cursors get `CURSOR_EXPIRED`. @default 1000 */
  readonly eventRetention: number;
  /** Whether GraphiQL is served at `/graphql`. @default true outside production */
  readonly graphiql: boolean;
  /**
   * Whether only trusted documents are run: an operation must name one of the SDK's documents
   * (`src/client/generated/persisted-documents.json`) by `extensions.persistedQuery.sha256Hash`, and
   * one sending a document's text is refused with PERSISTED_QUERY_ONLY, over every transport and
   * from GraphiQL too. @default false
   */
  readonly persistedOperationsOnly: boolean;
  /** Whether the schema answers introspection (`__schema`, `__type`). @default true outside production */
  readonly introspection: boolean;
  /**
   * Whether `/metrics` serves Prometheus metrics: on {@link metricsPort} when set, and on the
   * service port too outside production. @default true
   */
  readonly metrics: boolean;
  /** Port of a separate `/metrics`, `/healthz` and `/readyz` listener; unset: none. */
  readonly metricsPort: number | undefined;
  /** Interface that listener binds. @default the value of `HOST` */
  readonly metricsHost: string;
  /** Largest HTTP request body (413 above) and WebSocket message (close 1009 above). @default 1048576 */
  readonly maxBodyBytes: number;
  /** Deepest selection nesting of an operation (introspection excluded). @default 10 */
  readonly maxQueryDepth: number;
  /** Most aliases in an operation. @default 15 */
  readonly maxQueryAliases: number;
  /** Most lexical tokens in an operation's text. @default 2000 */
  readonly maxQueryTokens: number;
  /** Highest estimated cost of an operation (graphql-armor's cost model). @default 5000 */
  readonly maxQueryCost: number;
  /** Most directives in an operation. @default 50 */
  readonly maxQueryDirectives: number;
  /** `startTask` calls a user may make per minute (a token bucket holding one minute's worth); 0: unlimited. @default 600 */
  readonly rateLimitStartPerMinute: number;
  /**
   * Open WebSocket connections per user on one gateway, a connection counting for the user of its
   * token and for the user of each token its operations carried; 0: unlimited. @default 32
   */
  readonly maxConnectionsPerUser: number;
  /**
   * How long a WebSocket connection opened without a token may stay open without authenticating
   * an operation (a token in its `extensions.headers`); then it is closed with 4403. @default 5000
   */
  readonly anonymousSocketGraceMs: number;
  /** Subscriptions open at once on one WebSocket connection; 0: unlimited. @default 100 */
  readonly maxSubscriptionsPerConnection: number;
  /** A socket with more than this many bytes waiting to be sent is closed as a slow consumer. @default 16777216 */
  readonly slowConsumerBytes: number;
  /** How long a drain (SIGTERM/SIGINT) lets running tasks finish before handing them back. @default 10000 */
  readonly drainGraceMs: number;
  /** Port of the worker process's `/metrics`, `/healthz` and `/readyz`; unset: none. */
  readonly workerMetricsPort: number | undefined;
  /** @default 'development' */
  readonly nodeEnv: string;
  readonly production: boolean;
}

/** `AUTH_ISSUER` and `AUTH_AUDIENCE` (a comma-separated list), each unset when blank. */
function readTokenClaims(env: Env): TokenClaims {
  const issuer = env['AUTH_ISSUER']?.trim();
  if (issuer !== undefined && /[\s,]/.test(issuer)) {
    throw new ConfigError('AUTH_ISSUER', 'expected one issuer, without spaces or commas');
  }
  const audienceList = env['AUTH_AUDIENCE']?.trim();
  const audience = audienceList ? audienceList.split(',').map((entry) => entry.trim()) : [];
  if (audience.some((entry) => entry === '' || /\s/.test(entry))) {
    throw new ConfigError('AUTH_AUDIENCE', 'expected comma-separated audiences, none empty or with spaces');
  }
  return {
    ...(issuer ? { issuer } : {}),
    ...(audience.length > 0 ? { audience } : {}),
  };
}

function readAuth(env: Env, production: boolean): AuthConfig {
  return { ...readAuthKey(env, production), ...readTokenClaims(env) };
}

function readAuthKey(env: Env, production: boolean): AuthConfig {
  const secret = env['AUTH_JWT_SECRET'];
  const jwksUrl = env['AUTH_JWKS_URL'];
  const publicKey = env['AUTH_PUBLIC_KEY'];
  const set = [
    secret && 'AUTH_JWT_SECRET',
    jwksUrl && 'AUTH_JWKS_URL',
    publicKey && 'AUTH_PUBLIC_KEY',
  ].filter(Boolean);
  if (set.length > 1) {
    throw new ConfigError(set.join(', '), 'set only one of AUTH_JWT_SECRET, AUTH_JWKS_URL, AUTH_PUBLIC_KEY');
  }
  if (secret) {
    if (Buffer.byteLength(secret) < 32) {
      throw new ConfigError('AUTH_JWT_SECRET', 'must be at least 32 bytes long for HS256');
    }
    return { mode: 'secret', secret, ephemeral: false };
  }
  if (jwksUrl) {
    let url: URL;
    try {
      url = new URL(jwksUrl);
    } catch {
      throw new ConfigError('AUTH_JWKS_URL', `not a URL: ${JSON.stringify(jwksUrl)}`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw new ConfigError('AUTH_JWKS_URL', 'must be an http(s) URL');
    }
    return { mode: 'jwks', jwksUrl: url };
  }
  if (publicKey) {
    const pem = publicKey.includes('\\n') ? publicKey.replaceAll('\\n', '\n') : publicKey;
    if (!pem.includes('-----BEGIN PUBLIC KEY-----')) {
      throw new ConfigError('AUTH_PUBLIC_KEY', 'expected a PEM "-----BEGIN PUBLIC KEY-----" block (SPKI)');
    }
    return { mode: 'public-key', publicKeyPem: pem };
  }
  if (production) {
    throw new ConfigError(
      'AUTH_JWT_SECRET',
      'NODE_ENV=production needs a token key: set AUTH_JWT_SECRET, AUTH_JWKS_URL or AUTH_PUBLIC_KEY',
    );
  }
  return { mode: 'secret', secret: crypto.randomUUID() + crypto.randomUUID(), ephemeral: true };
}

/**
 * Reads and validates the configuration. Throws {@link ConfigError} naming the first bad variable.
 */
export function loadConfig(env: Env = process.env): Config {
  const nodeEnv = env['NODE_ENV']?.trim() || 'development';
  const production = nodeEnv === 'production';
  const logLevel = (env['LOG_LEVEL']?.trim().toLowerCase() || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(env['LOG_LEVEL'])}`,
    );
  }
  const redisUrl = env['REDIS_URL']?.trim() || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError(
      'REDIS_URL',
      `expected redis://host:port or rediss://..., got ${JSON.stringify(redisUrl)}`,
    );
  }
  const host = env['HOST']?.trim() || '127.0.0.1';
  const corsOrigins = (env['CORS_ORIGINS'] ?? '')
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean);
  for (const origin of corsOrigins) {
    if (origin === '*') continue;
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      throw new ConfigError(
        'CORS_ORIGINS',
        `not an origin: ${JSON.stringify(origin)} (expected e.g. https://app.example.com)`,
      );
    }
    if (parsed.origin !== origin) {
      throw new ConfigError(
        'CORS_ORIGINS',
        `${JSON.stringify(origin)} is not a bare origin; use ${parsed.origin}`,
      );
    }
  }
  const port = readInt(env, 'PORT', 4000, 0, 65535);
  const metricsPort = readOptionalPort(env, 'METRICS_PORT');
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) {
    throw new ConfigError(
      'METRICS_PORT',
      `must differ from PORT (${port}): it keeps /metrics off the public port`,
    );
  }
  const workerConcurrency = readInt(env, 'WORKER_CONCURRENCY', 4, 0, 1_000);
  const redisKeyPrefix = env['REDIS_KEY_PREFIX']?.trim() || 'tss';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(redisKeyPrefix)) {
    throw new ConfigError('REDIS_KEY_PREFIX', 'expected 1 to 64 letters, digits or _ . : -');
  }
  return {
    port,
    redisKeyPrefix,
    redisConnectTimeoutMs: readInt(env, 'REDIS_CONNECT_TIMEOUT_MS', 10_000, 100, 600_000),
    workerLockMs: readInt(env, 'WORKER_LOCK_MS', 30_000, 1_000, 3_600_000),
    redisCommandTimeoutMs: readInt(env, 'REDIS_COMMAND_TIMEOUT_MS', 5_000, 100, 600_000),
    taskRetentionMs: readDuration(env, 'TASK_RETENTION', 30 * 86_400_000),
    maxRunningPerUser: readInt(
      env,
      'MAX_RUNNING_PER_USER',
      Math.max(1, Math.ceil(workerConcurrency / 2)),
      0,
      1_000_000,
    ),
    host,
    redisUrl,
    dataDir: path.resolve(env['DATA_DIR']?.trim() || './data'),
    auth: readAuth(env, production),
    corsOrigins,
    keepAliveMs: readInt(env, 'KEEPALIVE_MS', 12_000, 100, 600_000),
    connectionInitTimeoutMs: readInt(env, 'CONNECTION_INIT_TIMEOUT_MS', 3_000, 100, 600_000),
    workerConcurrency,
    logLevel,
    eventRetention: readInt(env, 'EVENT_RETENTION', 1_000, 1, 10_000_000),
    graphiql: readBool(env, 'GRAPHIQL', !production),
    introspection: readBool(env, 'INTROSPECTION', !production),
    persistedOperationsOnly: readBool(env, 'PERSISTED_OPERATIONS_ONLY', false),
    metrics: readBool(env, 'METRICS', true),
    metricsPort,
    metricsHost: env['METRICS_HOST']?.trim() || host,
    maxBodyBytes: readInt(env, 'MAX_BODY_BYTES', 1_048_576, 1_024, 1_073_741_824),
    maxQueryDepth: readInt(env, 'MAX_QUERY_DEPTH', 10, 1, 1_000),
    maxQueryAliases: readInt(env, 'MAX_QUERY_ALIASES', 15, 0, 10_000),
    maxQueryTokens: readInt(env, 'MAX_QUERY_TOKENS', 2_000, 10, 1_000_000),
    maxQueryCost: readInt(env, 'MAX_QUERY_COST', 5_000, 1, 100_000_000),
    maxQueryDirectives: readInt(env, 'MAX_QUERY_DIRECTIVES', 50, 0, 10_000),
    rateLimitStartPerMinute: readInt(env, 'RATE_LIMIT_START_PER_MINUTE', 600, 0, 1_000_000),
    maxConnectionsPerUser: readInt(env, 'MAX_CONNECTIONS_PER_USER', 32, 0, 1_000_000),
    anonymousSocketGraceMs: readInt(env, 'ANONYMOUS_SOCKET_GRACE_MS', 5_000, 100, 600_000),
    maxSubscriptionsPerConnection: readInt(env, 'MAX_SUBSCRIPTIONS_PER_CONNECTION', 100, 0, 1_000_000),
    slowConsumerBytes: readInt(env, 'SLOW_CONSUMER_BYTES', 16_777_216, 1_024, 1_073_741_824),
    drainGraceMs: readInt(env, 'DRAIN_GRACE_MS', 10_000, 0, 3_600_000),
    workerMetricsPort: readOptionalPort(env, 'WORKER_METRICS_PORT'),
    nodeEnv,
    production,
  };
}
