/**
 * Production mode (NODE_ENV=production): introspection and GraphiQL off unless asked for, field
 * suggestions hidden, `/metrics` off the public port, no CORS headers for other origins; and the
 * validation of every operations variable. Runs against both backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { configErrorOf } from './utils/config-error.js';
import { extensionsOf, messageErrors } from './utils/ops.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { openRawSocket } from './utils/ws-clients.js';

const INTROSPECTION = '{ __schema { queryType { name } } }';
const TYPE_INTROSPECTION = '{ __type(name: "Task") { name } }';

async function fetchPage(url: string) {
  const response = await fetch(url, { headers: { accept: 'text/html' } });
  return { status: response.status, html: await response.text() };
}

describe('NODE_ENV=production with the defaults', () => {
  let server: TestServer;
  let token: string;
  beforeAll(async () => {
    server = await startTestServer({ env: { NODE_ENV: 'production' } });
    token = await server.token('prod-user');
  });
  afterAll(() => server.stop());

  it('refuses __schema and __type over HTTP and still answers __typename and ordinary queries', async () => {
    for (const query of [INTROSPECTION, TYPE_INTROSPECTION]) {
      const refused = await server.gql(query, {}, token);
      expect(refused.data ?? null).toBeNull();
      expect(refused.errors?.[0]?.message).toMatch(/introspection has been disabled/);
    }
    const fine = await server.gql<{ __typename: string; viewer: { userId: string } }>(
      '{ __typename viewer { userId } }',
      {},
      token,
    );
    expect(fine.data).toEqual({ __typename: 'Query', viewer: { userId: 'prod-user' } });
  });

  it('refuses __schema over WebSocket too', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init({ authorization: `Bearer ${token}` });
    raw.send({ id: 'i', type: 'subscribe', payload: { query: INTROSPECTION } });
    const refused = await raw.next((m) => m['id'] === 'i' && m['type'] === 'error', 'the refusal');
    expect(String((messageErrors(refused)[0] as { message: string }).message)).toMatch(
      /introspection has been disabled/,
    );
    raw.socket.close();
  });

  it('hides "Did you mean" field suggestions', async () => {
    const response = await server.gql('{ viewr { userId } }', {}, token);
    expect(response.errors?.[0]?.message).toBeDefined();
    expect(response.errors?.[0]?.message).not.toMatch(/Did you mean/);
  });

  it('does not serve GraphiQL', async () => {
    const page = await fetchPage(server.url);
    expect(page.html).not.toContain('renderYogaGraphiQL');
  });

  it('keeps /metrics off the public port (no METRICS_PORT: not served) and health on it', async () => {
    const base = new URL(server.url).origin;
    expect((await fetch(`${base}/metrics`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('sends no CORS headers to another origin', async () => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { origin: 'https://evil.example.com', 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
    expect(response.headers.get('access-control-allow-credentials')).toBeNull();
  });
});

describe('NODE_ENV=production with INTROSPECTION=true and GRAPHIQL=true', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({
      env: { NODE_ENV: 'production', INTROSPECTION: 'true', GRAPHIQL: 'true' },
    });
  });
  afterAll(() => server.stop());

  it('answers introspection and serves GraphiQL', async () => {
    const token = await server.token('prod-introspect');
    const response = await server.gql<{ __schema: { queryType: { name: string } } }>(
      INTROSPECTION,
      {},
      token,
    );
    expect(response.data?.__schema.queryType.name).toBe('Query');
    const page = await fetchPage(server.url);
    expect(page.status).toBe(200);
    expect(page.html).toContain('renderYogaGraphiQL');
  });
});

describe('development defaults', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('answers introspection and keeps field suggestions', async () => {
    const token = await server.token('dev-user');
    const response = await server.gql<{ __schema: { queryType: { name: string } } }>(
      INTROSPECTION,
      {},
      token,
    );
    expect(response.data?.__schema.queryType.name).toBe('Query');
    const typo = await server.gql('{ viewr { userId } }', {}, token);
    expect(typo.errors?.[0]?.message).toMatch(/Did you mean "viewer"/);
    expect(extensionsOf(typo.errors?.[0])['code']).not.toBe('INTERNAL_SERVER_ERROR');
  });
});

describe('operations variables', () => {
  it('documents its defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      introspection: true,
      metrics: true,
      maxBodyBytes: 1_048_576,
      maxQueryDepth: 10,
      maxQueryAliases: 15,
      maxQueryTokens: 2_000,
      maxQueryCost: 5_000,
      maxQueryDirectives: 50,
      rateLimitStartPerMinute: 600,
      maxConnectionsPerUser: 32,
      anonymousSocketGraceMs: 5_000,
      maxSubscriptionsPerConnection: 100,
      slowConsumerBytes: 16_777_216,
      drainGraceMs: 10_000,
      workerMetricsPort: undefined,
      metricsPort: undefined,
      metricsHost: '127.0.0.1',
      corsOrigins: [],
    });
    expect(loadConfig({ NODE_ENV: 'production', AUTH_JWT_SECRET: 'x'.repeat(32) })).toMatchObject({
      introspection: false,
      graphiql: false,
    });
  });

  it.each<[string, string]>([
    ['MAX_BODY_BYTES', '10'],
    ['MAX_QUERY_DEPTH', '0'],
    ['MAX_QUERY_ALIASES', '-1'],
    ['MAX_QUERY_TOKENS', 'many'],
    ['MAX_QUERY_COST', '1.5'],
    ['MAX_QUERY_DIRECTIVES', '-3'],
    ['RATE_LIMIT_START_PER_MINUTE', 'fast'],
    ['MAX_CONNECTIONS_PER_USER', '-1'],
    ['ANONYMOUS_SOCKET_GRACE_MS', '10'],
    ['MAX_SUBSCRIPTIONS_PER_CONNECTION', 'x'],
    ['SLOW_CONSUMER_BYTES', '100'],
    ['DRAIN_GRACE_MS', '-5'],
    ['WORKER_METRICS_PORT', '70000'],
    ['INTROSPECTION', 'perhaps'],
    ['METRICS', 'sometimes'],
    ['METRICS_PORT', '65536'],
    ['AUTH_AUDIENCE', 'a,,b'],
  ])('refuses %s=%s with a ConfigError naming the variable', (variable, value) => {
    const error = configErrorOf({ [variable]: value });
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });
});
