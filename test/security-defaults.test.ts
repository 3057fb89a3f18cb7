/**
 * Security defaults: strict token claims (`exp` required, `AUTH_ISSUER` / `AUTH_AUDIENCE`, `iat`)
 * and production defaults (CORS, WebSocket `Origin`, `/metrics` off the public port). Nothing here
 * depends on the backend: embedded only. The `/dev/token` Host check is in dev-token.test.ts.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { decodeJwt, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, buildApp } from '../src/app.js';
import { createTokenVerifier, mintToken } from '../src/auth/tokens.js';
import { loadConfig } from '../src/config.js';
import { configErrorOf } from './utils/config-error.js';
import { createInProcessApp, IN_PROCESS_URL, type InProcessApp } from './utils/in-process-app.js';
import { extensionsOf, messageErrors, scrape } from './utils/ops.js';
import { makeTempDir, startTestServer, TEST_SECRET, type TestServer } from './utils/tserver.js';
import { openRawSocket } from './utils/ws-clients.js';

const VIEWER = '{ viewer { userId roles } }';
const ISSUER = 'https://issuer.example.com';
const AUDIENCES = ['task-status', 'task-status-admin'];
const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));

const nowS = () => Math.floor(Date.now() / 1000);

/** A token signed with `secret` holding exactly `claims` (no `iat` or `exp` unless given). */
function signed(claims: JWTPayload, secret = TEST_SECRET): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .sign(new TextEncoder().encode(secret));
}

const codeOf = (error: unknown) => extensionsOf(error)['code'];

describe('token claims: exp is required', () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp();
  });
  afterAll(() => app.stop());

  it('should refuse a token without exp over HTTP with UNAUTHENTICATED, saying it has no exp claim', async () => {
    const token = await signed({ sub: 'alice', roles: [], iat: nowS() });
    const response = await app.gql(VIEWER, {}, token);
    expect(response.status).toBe(401);
    expect(response.errors?.map(codeOf)).toEqual(['UNAUTHENTICATED']);
    expect(response.errors?.[0]?.message).toBe('token has no exp claim');
    expect(response.data ?? null).toBeNull();
  });

  it('should refuse a token whose iat lies in the future', async () => {
    const token = await signed({ sub: 'alice', iat: nowS() + 3_600, exp: nowS() + 7_200 });
    const response = await app.gql(VIEWER, {}, token);
    expect(response.status).toBe(401);
    expect(response.errors?.[0]?.message).toMatch(/iat/);
  });

  it('should give the viewer the epoch ms of the token iat and exp', async () => {
    const verifier = createTokenVerifier({ mode: 'secret', secret: TEST_SECRET, ephemeral: false });
    const token = await mintToken(TEST_SECRET, 'alice', { expiresIn: '1h' });
    const { iat, exp } = decodeJwt(token);
    expect(await verifier.verify(token)).toMatchObject({
      userId: 'alice',
      issuedAt: (iat as number) * 1000,
      expiresAt: (exp as number) * 1000,
    });
    const withoutIat = await signed({ sub: 'alice', exp: nowS() + 60 });
    expect((await verifier.verify(withoutIat)).issuedAt).toBeNull();
  });
});

describe('token claims over graphql-ws: exp is required', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('should close a socket whose connection token has no exp with 4403 and count the refusal', async () => {
    const before = (await scrape(server)).value('tss_auth_failures_total', { transport: 'ws' });
    const raw = await openRawSocket(server.wsUrl);
    raw.send({
      type: 'connection_init',
      payload: { authorization: `Bearer ${await signed({ sub: 'alice', iat: nowS() })}` },
    });
    const closed = await raw.closed;
    expect(closed.code).toBe(4403);
    expect(closed.reason).toContain('no exp claim');
    expect(raw.messages.find((m) => m['type'] === 'connection_ack')).toBeUndefined();
    const after = (await scrape(server)).value('tss_auth_failures_total', { transport: 'ws' });
    expect(after).toBe(before + 1);
  });

  it('should refuse an operation authorised by a per-operation token without exp, keeping the socket', async () => {
    const raw = await openRawSocket(server.wsUrl);
    await raw.init();
    const token = await signed({ sub: 'alice', iat: nowS() });
    raw.send({
      id: 'q',
      type: 'subscribe',
      payload: { query: VIEWER, extensions: { headers: { authorization: `Bearer ${token}` } } },
    });
    const error = await raw.next((m) => m['type'] === 'error' && m['id'] === 'q', 'the refusal');
    expect(messageErrors(error).map(codeOf)).toEqual(['UNAUTHENTICATED']);
    expect(raw.socket.readyState).toBe(raw.socket.OPEN);
    raw.socket.close();
  });
});

describe(`token claims: AUTH_ISSUER=${ISSUER} AUTH_AUDIENCE=${AUDIENCES.join(',')}`, () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp({ env: { AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCES.join(',') } });
  });
  afterAll(() => app.stop());

  const valid = { sub: 'alice', roles: [], iat: nowS(), exp: nowS() + 3_600 };

  it.each<[string, JWTPayload]>([
    ['the issuer and the first audience', { ...valid, iss: ISSUER, aud: 'task-status' }],
    [
      'the issuer and, among others, the second audience',
      { ...valid, iss: ISSUER, aud: ['x', 'task-status-admin'] },
    ],
  ])('should accept a token naming %s', async (_what, claims) => {
    const response = await app.gql<{ viewer: { userId: string } }>(VIEWER, {}, await signed(claims));
    expect(response.errors).toBeUndefined();
    expect(response.data?.viewer.userId).toBe('alice');
  });

  it.each<[string, JWTPayload, string]>([
    ['no iss', { ...valid, aud: 'task-status' }, 'token has no iss claim'],
    [
      'another issuer',
      { ...valid, iss: 'https://other.example.com', aud: 'task-status' },
      'token issuer is not accepted',
    ],
    ['no aud', { ...valid, iss: ISSUER }, 'token has no aud claim'],
    [
      'another application as audience',
      { ...valid, iss: ISSUER, aud: 'other-app' },
      'token audience is not accepted',
    ],
  ])('should refuse a token with %s with UNAUTHENTICATED', async (_what, claims, message) => {
    const response = await app.gql(VIEWER, {}, await signed(claims));
    expect(response.status).toBe(401);
    expect(response.errors?.map(codeOf)).toEqual(['UNAUTHENTICATED']);
    expect(response.errors?.[0]?.message).toBe(message);
  });
});

describe('tokens the project mints carry iat, exp, and AUTH_ISSUER / AUTH_AUDIENCE when set', () => {
  let devApp: App;
  let devTokens: { user: string; service: string } | null;
  let base: string;
  beforeAll(async () => {
    const config = loadConfig({
      PORT: '0',
      DATA_DIR: makeTempDir('tss-claims-'),
      LOG_LEVEL: 'silent',
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCES.join(','),
    });
    devApp = buildApp({ config });
    const started = await devApp.start();
    devTokens = started.devTokens;
    base = new URL('/', started.url).href.replace(/\/$/, '');
  });
  afterAll(() => devApp.stop());

  const expectClaims = (token: string) =>
    expect(decodeJwt(token)).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCES,
      iat: expect.any(Number),
      exp: expect.any(Number),
    });

  it('should mint the printed dev tokens and POST /dev/token tokens with them, accepted by the server', async () => {
    expect(devTokens).not.toBeNull();
    expectClaims(devTokens?.user ?? '');
    expectClaims(devTokens?.service ?? '');
    const response = await fetch(`${base}/dev/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userId: 'alice' }),
    });
    const { token } = (await response.json()) as { token: string };
    expectClaims(token);
    const viewer = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: VIEWER }),
    });
    expect(await viewer.json()).toEqual({ data: { viewer: { userId: 'alice', roles: [] } } });
  });

  it('should mint them with npm run token', async () => {
    const { AUTH_JWKS_URL: _jwks, AUTH_PUBLIC_KEY: _key, NODE_ENV: _env, ...inherited } = process.env;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', 'scripts/token.ts', 'alice', '--expires', '10m'],
        {
          cwd: REPO_ROOT,
          env: {
            ...inherited,
            AUTH_JWT_SECRET: TEST_SECRET,
            AUTH_ISSUER: ISSUER,
            AUTH_AUDIENCE: AUDIENCES.join(','),
          },
        },
        (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)),
      ),
    );
    const token = stdout.trim();
    expectClaims(token);
    const { iat, exp } = decodeJwt(token);
    expect((exp as number) - (iat as number)).toBe(600);
  });
});

describe('token claims: the AUTH_ISSUER and AUTH_AUDIENCE variables', () => {
  it('should read them trimmed, the audience as a list, and leave them unset when absent', () => {
    const config = loadConfig({
      AUTH_ISSUER: ` ${ISSUER} `,
      AUTH_AUDIENCE: ' task-status , task-status-admin ',
    });
    expect(config.auth).toMatchObject({ issuer: ISSUER, audience: AUDIENCES });
    expect(loadConfig({}).auth).not.toHaveProperty('issuer');
    expect(loadConfig({}).auth).not.toHaveProperty('audience');
  });

  it.each<[string, Record<string, string>]>([
    ['AUTH_AUDIENCE', { AUTH_AUDIENCE: 'task-status,,admin' }],
    ['AUTH_AUDIENCE', { AUTH_AUDIENCE: 'task status' }],
    ['AUTH_ISSUER', { AUTH_ISSUER: 'https://a.example.com,https://b.example.com' }],
  ])('should refuse an unusable %s with a ConfigError naming it (%j)', (variable, env) => {
    const error = configErrorOf(env);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });
});

/** An in-process request with an `Origin`, as a browser on that origin would send it. */
function fromOrigin(app: InProcessApp, origin: string, method: 'POST' | 'OPTIONS' = 'POST') {
  return app.app.fetch(IN_PROCESS_URL, {
    method,
    headers:
      method === 'POST'
        ? { origin, 'content-type': 'application/json', accept: 'application/json' }
        : {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'authorization',
          },
    ...(method === 'POST' ? { body: JSON.stringify({ query: '{ __typename }' }) } : {}),
  });
}

const corsHeaders = (response: Response) => ({
  origin: response.headers.get('access-control-allow-origin'),
  credentials: response.headers.get('access-control-allow-credentials'),
});

describe('CORS: NODE_ENV=production without CORS_ORIGINS', () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp({ env: { NODE_ENV: 'production' } });
  });
  afterAll(() => app.stop());

  it('should send no CORS headers to another origin, on a request or a preflight', async () => {
    for (const method of ['POST', 'OPTIONS'] as const) {
      const response = await fromOrigin(app, 'https://evil.example.com', method);
      expect(corsHeaders(response)).toEqual({ origin: null, credentials: null });
    }
  });
});

describe('CORS: NODE_ENV=production with CORS_ORIGINS=*', () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp({ env: { NODE_ENV: 'production', CORS_ORIGINS: '*' } });
  });
  afterAll(() => app.stop());

  it('should allow any origin without credentials', async () => {
    const response = await fromOrigin(app, 'https://anywhere.example.com');
    expect(corsHeaders(response)).toEqual({ origin: 'https://anywhere.example.com', credentials: null });
  });

  it('should not allow the null origin of sandboxed frames', async () => {
    expect(corsHeaders(await fromOrigin(app, 'null'))).toEqual({ origin: null, credentials: null });
  });
});

describe('CORS: CORS_ORIGINS=https://app.example.com,https://admin.example.com', () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp({
      env: { NODE_ENV: 'production', CORS_ORIGINS: 'https://app.example.com,https://admin.example.com' },
    });
  });
  afterAll(() => app.stop());

  it('should allow a listed origin with credentials, varying by Origin', async () => {
    for (const method of ['POST', 'OPTIONS'] as const) {
      const response = await fromOrigin(app, 'https://admin.example.com', method);
      expect(corsHeaders(response)).toEqual({ origin: 'https://admin.example.com', credentials: 'true' });
      expect(response.headers.get('vary')).toMatch(/Origin/);
    }
  });

  it.each(['null', 'https://evil.example.com'])(
    'should send no CORS headers to the origin %s',
    async (origin) => {
      expect(corsHeaders(await fromOrigin(app, origin))).toEqual({ origin: null, credentials: null });
    },
  );
});

describe('CORS outside production without CORS_ORIGINS (development)', () => {
  let app: InProcessApp;
  beforeAll(async () => {
    app = await createInProcessApp();
  });
  afterAll(() => app.stop());

  it('should keep reflecting any origin, with credentials', async () => {
    const response = await fromOrigin(app, 'http://localhost:5173');
    expect(corsHeaders(response)).toEqual({ origin: 'http://localhost:5173', credentials: 'true' });
  });
});

/** The service as `npm start` runs it with `env` (and the test secret), on free ports. */
async function startApp(env: Record<string, string>) {
  const config = loadConfig({
    PORT: '0',
    AUTH_JWT_SECRET: TEST_SECRET,
    DATA_DIR: makeTempDir('tss-defaults-'),
    LOG_LEVEL: 'silent',
    ...env,
  });
  const app = buildApp({ config });
  const { url, metricsUrl } = await app.start();
  return { app, url, wsUrl: url.replace(/^http/, 'ws'), base: new URL(url).origin, metricsUrl };
}

describe('NODE_ENV=production with METRICS_PORT: WebSocket Origin and /metrics', () => {
  let server: Awaited<ReturnType<typeof startApp>>;
  beforeAll(async () => {
    server = await startApp({ NODE_ENV: 'production', METRICS_PORT: '0' });
  });
  afterAll(() => server.app.stop());

  it('should refuse a WebSocket upgrade from another origin with 403', async () => {
    await expect(
      openRawSocket(server.wsUrl, 'graphql-transport-ws', { Origin: 'https://evil.example.com' }),
    ).rejects.toThrow(/403/);
  });

  it("should accept an upgrade from the service's own origin and one without Origin", async () => {
    const token = await mintToken(TEST_SECRET, 'origin-user');
    for (const headers of [{ Origin: server.base }, {}] as Record<string, string>[]) {
      const raw = await openRawSocket(server.wsUrl, 'graphql-transport-ws', headers);
      await raw.init({ authorization: `Bearer ${token}` });
      raw.send({ id: 'q', type: 'subscribe', payload: { query: '{ viewer { userId } }' } });
      const next = await raw.next((m) => m['type'] === 'next' && m['id'] === 'q', 'the viewer');
      expect(next['payload']).toEqual({ data: { viewer: { userId: 'origin-user' } } });
      raw.socket.close();
    }
  });

  it('should answer /metrics on the service port with 404 and keep the health endpoints there', async () => {
    expect((await fetch(`${server.base}/metrics`)).status).toBe(404);
    expect((await fetch(`${server.base}/healthz`)).status).toBe(200);
    expect((await fetch(`${server.base}/readyz`)).status).toBe(200);
  });

  it('should serve /metrics, /healthz and /readyz on METRICS_PORT, and nothing else there', async () => {
    const metricsUrl = server.metricsUrl ?? '';
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect((await scrape({ url: metricsUrl })).has('tss_websocket_connections')).toBe(true);
    expect((await fetch(new URL('/healthz', metricsUrl))).status).toBe(200);
    expect((await fetch(new URL('/readyz', metricsUrl))).status).toBe(200);
    expect((await fetch(new URL('/graphql', metricsUrl))).status).toBe(404);
  });
});

describe('outside production with METRICS_PORT', () => {
  let server: Awaited<ReturnType<typeof startApp>>;
  beforeAll(async () => {
    server = await startApp({ METRICS_PORT: '0' });
  });
  afterAll(() => server.app.stop());

  it('should serve /metrics on the service port and on METRICS_PORT', async () => {
    expect((await scrape({ url: server.url })).has('tss_websocket_connections')).toBe(true);
    expect((await scrape({ url: server.metricsUrl ?? '' })).has('tss_websocket_connections')).toBe(true);
  });

  it('should keep accepting WebSocket upgrades from any origin', async () => {
    const raw = await openRawSocket(server.wsUrl, 'graphql-transport-ws', {
      Origin: 'http://localhost:5173',
    });
    await raw.init({ authorization: `Bearer ${await mintToken(TEST_SECRET, 'dev-user')}` });
    raw.socket.close();
  });
});

describe('the METRICS_PORT and METRICS_HOST variables', () => {
  it('should read them, METRICS_HOST defaulting to HOST', () => {
    expect(loadConfig({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' })).toMatchObject({
      metricsPort: 9464,
      metricsHost: '0.0.0.0',
    });
    expect(loadConfig({ HOST: '10.0.0.1' })).toMatchObject({
      metricsPort: undefined,
      metricsHost: '10.0.0.1',
    });
  });

  it.each<[string, Record<string, string>]>([
    ['METRICS_PORT', { METRICS_PORT: '70000' }],
    ['METRICS_PORT', { METRICS_PORT: 'metrics' }],
    ['METRICS_PORT', { PORT: '4000', METRICS_PORT: '4000' }],
  ])('should refuse an unusable %s with a ConfigError naming it (%j)', (variable, env) => {
    const error = configErrorOf(env);
    expect(error.variable).toBe(variable);
    expect(error.message.startsWith(`${variable}: `)).toBe(true);
  });
});
