import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { makeTempDir, startTestServer } from './utils/tserver.js';

let devApp: App | undefined;
let base: string;
let graphqlUrl: string;

/** The service as `npm start` runs it with no AUTH_* variable: an ephemeral secret. */
beforeAll(async () => {
  const config = loadConfig({ PORT: '0', DATA_DIR: makeTempDir('tss-devtoken-'), LOG_LEVEL: 'silent' });
  devApp = buildApp({ config });
  const { url } = await devApp.start();
  graphqlUrl = url;
  base = new URL('/', url).href.replace(/\/$/, '');
});

afterAll(async () => {
  await devApp?.stop();
});

function postToken(body: string, contentType = 'application/json', origin = base): Promise<Response> {
  return fetch(`${origin}/dev/token`, { method: 'POST', headers: { 'content-type': contentType }, body });
}

async function viewerOf(token: string): Promise<{ userId: string; roles: string[] }> {
  const response = await fetch(graphqlUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: '{ viewer { userId roles } }' }),
  });
  const body = (await response.json()) as { data?: { viewer: { userId: string; roles: string[] } } };
  if (!body.data) throw new Error(`viewer query failed: ${JSON.stringify(body)}`);
  return body.data.viewer;
}

describe('POST /dev/token with an ephemeral secret', () => {
  it('should mint a user token the server accepts for that user', async () => {
    const response = await postToken(JSON.stringify({ userId: 'alice' }));
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { token } = (await response.json()) as { token: string };
    expect(await viewerOf(token)).toEqual({ userId: 'alice', roles: [] });
  });

  it('should mint a service token when asked for one', async () => {
    const response = await postToken(JSON.stringify({ userId: 'billing.system_1', service: true }));
    const { token } = (await response.json()) as { token: string };
    expect(await viewerOf(token)).toEqual({ userId: 'billing.system_1', roles: ['service'] });
  });

  it.each([
    ['an empty user id', { userId: '' }],
    ['a user id longer than 64 characters', { userId: 'u'.repeat(65) }],
    ['a user id with a space', { userId: 'alice smith' }],
    ['a user id with a slash', { userId: '../alice' }],
    ['no user id', {}],
    ['a service flag that is not a boolean', { userId: 'alice', service: 'yes' }],
  ])('should refuse %s with 400', async (_what, body) => {
    const response = await postToken(JSON.stringify(body));
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: expect.any(String) });
  });

  it('should refuse a body that is not JSON with 400', async () => {
    expect((await postToken('userId=alice')).status).toBe(400);
  });

  it('should refuse another content type with 415, so a cross-site form cannot post', async () => {
    const response = await postToken(JSON.stringify({ userId: 'alice' }), 'text/plain');
    expect(response.status).toBe(415);
  });

  it('should refuse a body over 1 KiB with 413', async () => {
    const response = await postToken(JSON.stringify({ userId: 'alice', pad: 'x'.repeat(2_000) }));
    expect(response.status).toBe(413);
  });

  it('should answer GET with 405 and Allow: POST', async () => {
    const response = await fetch(`${base}/dev/token`);
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });
});

/** POSTs `{ userId: 'alice' }` to /dev/token over loopback with `Host: host`; returns the status. */
function postTokenWithHost(host: string): Promise<number> {
  const { port } = new URL(base);
  const body = JSON.stringify({ userId: 'alice' });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/dev/token',
        method: 'POST',
        headers: { host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('POST /dev/token and the Host header (DNS rebinding)', () => {
  it.each(['localhost', '127.0.0.1', '[::1]', '127.0.0.2'])(
    'should mint for a loopback peer naming the loopback host %s, with any port',
    async (name) => {
      expect(await postTokenWithHost(`${name}:${new URL(base).port}`)).toBe(200);
      expect(await postTokenWithHost(`${name}:1234`)).toBe(200);
      expect(await postTokenWithHost(name)).toBe(200);
    },
  );

  it.each([
    ['another site rebound to 127.0.0.1', 'attacker.example.com'],
    ['a name ending in localhost', 'localhost.attacker.example.com'],
    ['a name with userinfo', 'attacker.example.com@localhost'],
  ])('should refuse a loopback peer naming %s with 403', async (_what, name) => {
    expect(await postTokenWithHost(`${name}:${new URL(base).port}`)).toBe(403);
  });
});

describe('POST /dev/token with a configured key', () => {
  it('should not exist (404)', async () => {
    const server = await startTestServer();
    const origin = new URL('/', server.url).href.replace(/\/$/, '');
    const response = await postToken(JSON.stringify({ userId: 'alice' }), 'application/json', origin);
    expect(response.status).toBe(404);
  });
});
