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

describe('POST /dev/token with a configured key', () => {
  it('should not exist (404)', async () => {
    const server = await startTestServer();
    const origin = new URL('/', server.url).href.replace(/\/$/, '');
    const response = await postToken(JSON.stringify({ userId: 'alice' }), 'application/json', origin);
    expect(response.status).toBe(404);
  });
});
