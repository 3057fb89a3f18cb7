import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { type App, buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDemoPageHandler } from '../src/http/demo-page.js';
import { createLogger } from '../src/logger.js';
import { type ChildServer, startChildServer } from './utils/child-server.js';
import { buildDemoPage } from './utils/demo-build.js';
import { makeTempDir } from './utils/tserver.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const HAS_CHROMIUM = fs.existsSync(CHROMIUM);
/** Without chromium the browser test is skipped locally, and fails on CI rather than pass unseen. */
const itInBrowser = HAS_CHROMIUM || process.env['CI'] === 'true' ? it : it.skip;

/** GET (or another method) on a raw path, without the URL normalisation fetch does. */
function request(
  port: number,
  path: string,
  { method = 'GET', headers = {} }: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject).end();
  });
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

describe('the demo page over HTTP', () => {
  let app: App | undefined;
  let port: number;
  let assets: string[];

  beforeAll(async () => {
    await buildDemoPage();
    const config = loadConfig({ PORT: '0', DATA_DIR: makeTempDir('tss-demo-http-'), LOG_LEVEL: 'silent' });
    app = buildApp({ config });
    ({ port } = await app.start());
    const index = await request(port, '/');
    assets = [...index.body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((match) => match[1] ?? '');
  }, 60_000);

  afterAll(async () => {
    await app?.stop();
  });

  it('should serve index.html at / as HTML that is revalidated on every load', async () => {
    const response = await request(port, '/');
    expect(response.status).toBe(200);
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-cache');
    expect(response.headers['content-security-policy']).toContain("default-src 'self'");
    expect(response.body).toContain('<div id="app">');
  });

  it('should load only bundled files from /assets: no CDN, no other host', async () => {
    const index = await request(port, '/');
    expect(assets.some((asset) => asset.endsWith('.js'))).toBe(true);
    expect(assets.some((asset) => asset.endsWith('.css'))).toBe(true);
    expect(index.body.match(/(?:src|href)="(?:https?:)?\/\/[^"]*"/g) ?? []).toEqual([]);
  });

  it('should serve hashed assets with their content type, cached as immutable', async () => {
    for (const asset of assets) {
      const response = await request(port, asset);
      expect(response.status, asset).toBe(200);
      expect(response.headers['content-type'], asset).toBe(
        asset.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
      );
      expect(response.headers['cache-control'], asset).toBe('public, max-age=31536000, immutable');
      expect(response.headers['x-content-type-options'], asset).toBe('nosniff');
    }
  });

  it('should answer a matching If-None-Match with 304 and HEAD with headers only', async () => {
    const first = await request(port, '/');
    const etag = first.headers.etag;
    expect(etag).toEqual(expect.any(String));
    const again = await request(port, '/', { headers: { 'if-none-match': etag ?? '' } });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    const head = await request(port, '/', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(first.body)));
    expect(head.body).toBe('');
  });

  it.each([
    '/assets/missing-0123abcd.js',
    '/assets/../index.html',
    '/assets/..%2F..%2Fpackage.json',
    '/assets/',
  ])('should answer 404 for %s', async (path) => {
    expect((await request(port, path)).status).toBe(404);
  });

  it('should refuse POST / with 405', async () => {
    const response = await request(port, '/', { method: 'POST' });
    expect(response.status).toBe(405);
    expect(response.headers['allow']).toBe('GET, HEAD');
  });

  it('should answer / with a page saying to run npm run build, linking GraphiQL, when the page is not built', async () => {
    const handle = createDemoPageHandler({
      dir: makeTempDir('tss-demo-unbuilt-'),
      graphqlPath: '/graphql',
      logger: createLogger('silent'),
    });
    const bare = http.createServer((req, res) => {
      if (!handle(req, res)) res.writeHead(418).end();
    });
    try {
      const barePort = await listen(bare);
      const page = await request(barePort, '/');
      expect(page.status).toBe(404);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.body).toContain('npm run build');
      expect(page.body).toContain('<a href="/graphql">');
      expect((await request(barePort, '/assets/index-0123abcd.js')).status).toBe(404);
      expect((await request(barePort, '/graphql')).status).toBe(418);
    } finally {
      await new Promise((resolve) => bare.close(resolve));
    }
  });
});

const row = (id: string) => `[data-testid="task-row"][data-task-id="${id}"]`;
const completion = (id: string) => `[data-testid="completion"][data-task-id="${id}"]`;

/** Submits a kind's form and returns the id of the task it started. */
async function startFromForm(page: Page, kind: string, fields: Record<string, string>): Promise<string> {
  const form = page.getByTestId(`start-form-${kind}`);
  for (const [field, value] of Object.entries(fields)) {
    await form.getByTestId(`start-${kind}-${field}`).fill(value);
  }
  const status = page.getByTestId(`started-${kind}`);
  const previous = (await status.count()) > 0 ? await status.getAttribute('data-task-id') : null;
  await form.getByTestId(`start-${kind}`).click();
  const started = await page.waitForSelector(
    previous === null
      ? `[data-testid="started-${kind}"]`
      : `[data-testid="started-${kind}"]:not([data-task-id="${previous}"])`,
  );
  const id = await started.getAttribute('data-task-id');
  if (!id) throw new Error(`the ${kind} form shows no task id`);
  return id;
}

/** A graphql-ws `subscribe` message a page sent. */
interface SentSubscribe {
  /** Which of the page's WebSockets carried it, in the order they were opened. */
  readonly socket: number;
  readonly variables: unknown;
}

function parseJson(text: string | Buffer): unknown {
  try {
    return JSON.parse(String(text));
  } catch {
    return null;
  }
}

/** A page in a fresh browser context that may reach 127.0.0.1 only, recording what it did. */
async function openPage(browser: Browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const blocked: string[] = [];
  await context.route('**/*', (route) => {
    const requested = new URL(route.request().url());
    if (requested.hostname === '127.0.0.1') return route.continue();
    blocked.push(requested.href);
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  const sockets = new Set<string>();
  /** graphql-ws `subscribe` messages the page sent, with the number of the socket (0, 1, …) that carried each. */
  const subscribes: SentSubscribe[] = [];
  page.on('websocket', (socket) => {
    sockets.add(socket.url());
    const socketNumber = socketCount++;
    socket.on('framesent', ({ payload }) => {
      const message = parseJson(payload) as { type?: unknown; payload?: { variables?: unknown } } | null;
      if (message?.type === 'subscribe') {
        subscribes.push({ socket: socketNumber, variables: message.payload?.variables ?? null });
      }
    });
  });
  let socketCount = 0;
  /** The operation names of the page's GraphQL requests over HTTP. */
  const httpOperations: string[] = [];
  page.on('request', (sent) => {
    if (sent.method() !== 'POST' || new URL(sent.url()).pathname !== '/graphql') return;
    const body = parseJson(sent.postData() ?? '') as { operationName?: unknown } | null;
    httpOperations.push(typeof body?.operationName === 'string' ? body.operationName : '?');
  });
  // What the page said, shown only when the test fails.
  const consoleLines: string[] = [];
  page.on('console', (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
  onTestFailed(async () => {
    console.error(`browser console:\n${consoleLines.join('\n')}`);
    await page.screenshot({ path: `${ARTIFACTS}demo-failure.png`, fullPage: true }).catch(() => undefined);
  });
  return { page, blocked, pageErrors, sockets, subscribes, httpOperations };
}

describe('the demo page in a real browser', () => {
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!HAS_CHROMIUM) return;
    await buildDemoPage();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
  });

  /** The browser, or why there is none (only reached on CI, where a missing chromium must fail). */
  function launched(): Browser {
    if (!browser) {
      throw new Error(`CI=true but ${CHROMIUM} is missing: install it with apt-get install -y chromium`);
    }
    return browser;
  }

  itInBrowser(
    'should show a task completing live, and keep a completion across a kill -9 and restart of the server, exactly once',
    async () => {
      const dataDir = makeTempDir('tss-demo-browser-');
      let server: ChildServer = await startChildServer({ auth: false, dataDir });
      const { page, blocked, pageErrors, sockets, subscribes, httpOperations } = await openPage(launched());

      await page.goto(`http://127.0.0.1:${server.port}/`);
      await page.getByTestId('user-id').fill('browser-user');
      await page.getByTestId('use-user').click();
      await page.waitForSelector('[data-testid="current-user"]:text-is("browser-user")');
      await page.waitForSelector('[data-testid="connection-state"][data-state="connected"]');

      // A task started from its form shows up in the list and in the completions log, live.
      const echoId = await startFromForm(page, 'echo', { value: '{ "greeting": "hello from the browser" }' });
      await page.waitForSelector(`${row(echoId)}[data-status="SUCCEEDED"]`);
      await page.waitForSelector(
        `[data-testid="started-echo"][data-live-task-id="${echoId}"][data-status="SUCCEEDED"]`,
      );
      await page.waitForSelector(`${completion(echoId)}[data-replayed="false"][data-status="SUCCEEDED"]`);
      expect(await page.locator(row(echoId)).textContent()).toContain('hello from the browser');
      await page.screenshot({ path: `${ARTIFACTS}demo-completed.png`, fullPage: true });

      // A sleep task is under way when the server dies.
      const sleepId = await startFromForm(page, 'sleep', { ms: '4000' });
      await page.waitForFunction((selector) => {
        const bar = document.querySelector<HTMLProgressElement>(`${selector} progress`);
        return bar !== null && bar.value > 0;
      }, row(sleepId));
      expect(await page.locator(row(sleepId)).getAttribute('data-status')).toBe('RUNNING');
      // useTask: the row's progress comes from its own taskUpdated subscription, not from polling.
      expect(await page.locator(row(sleepId)).getAttribute('data-live')).toBe('true');
      expect(httpOperations).not.toContain('Task');
      const sleepSubscribe = subscribes.find((sent) => isDeepStrictEqual(sent.variables, { id: sleepId }));
      expect(sleepSubscribe).toBeDefined();
      const socketBeforeKill = sleepSubscribe?.socket ?? 0;
      server.kill('SIGKILL');
      await server.waitExit();
      await page.waitForSelector('[data-testid="connection-state"]:not([data-state="connected"])');
      // useConnectionState: the indicator follows the client's state.
      await page.waitForSelector('[data-testid="connection-state"][data-state="reconnecting"]');
      await page.screenshot({ path: `${ARTIFACTS}demo-offline.png`, fullPage: true });

      // Back on the same port and data (and a new ephemeral secret, so the SDK fetches a new
      // token): the page reconnects by itself and the task completes.
      server = await startChildServer({ auth: false, dataDir, port: server.port });
      await page.waitForSelector('[data-testid="connection-state"][data-state="connected"]', {
        timeout: 30_000,
      });
      await page.waitForSelector(`${completion(sleepId)}[data-status="SUCCEEDED"]`, { timeout: 30_000 });
      await page.waitForSelector(`${row(sleepId)}[data-status="SUCCEEDED"]`);
      // The unfinished task's subscription and the completions' were sent again on the new socket.
      const resent = subscribes
        .filter((sent) => sent.socket > socketBeforeKill)
        .map((sent) => sent.variables);
      expect(resent).toContainEqual({ id: sleepId });
      expect(resent).toContainEqual(expect.objectContaining({ userId: 'browser-user' }));

      // A later completion arrives after any duplicate of the earlier ones would have.
      const laterId = await startFromForm(page, 'echo', { value: '"after the restart"' });
      await page.waitForSelector(`${completion(laterId)}[data-replayed="false"]`);
      // useTask follows a new id: the form that followed the first echo task now shows this one.
      await page.waitForSelector(
        `[data-testid="started-echo"][data-task-id="${laterId}"][data-live-task-id="${laterId}"][data-status="SUCCEEDED"]`,
      );
      expect(await page.locator(completion(sleepId)).count()).toBe(1);
      expect(await page.locator(completion(echoId)).count()).toBe(1);

      // Cancelling from the list ends the task and logs its completion too.
      const longId = await startFromForm(page, 'sleep', { ms: '600000' });
      await page.locator(row(longId)).getByTestId('cancel-task').click();
      await page.waitForSelector(`${row(longId)}[data-status="CANCELLED"]`);
      await page.waitForSelector(`${completion(longId)}[data-status="CANCELLED"]`);

      const cursors = await page
        .locator('[data-testid="completion"]')
        .evaluateAll((items) => items.map((item) => item.getAttribute('data-cursor')));
      expect(cursors).toHaveLength(4);
      expect(new Set(cursors).size).toBe(4);
      await page.screenshot({ path: `${ARTIFACTS}demo-resumed.png`, fullPage: true });

      expect([...sockets]).toEqual([`ws://127.0.0.1:${server.port}/graphql`]);
      // The viewer (useTaskCompletions' user and cursor) and the list went over HTTP; task states never did.
      expect(httpOperations).toEqual(expect.arrayContaining(['Viewer', 'Tasks', 'StartTask', 'CancelTask']));
      expect(httpOperations).not.toContain('Task');
      expect(blocked).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    120_000,
  );

  itInBrowser(
    'should say dev tokens are unavailable when a key is configured, and work with a pasted token',
    async () => {
      const server = await startChildServer();
      const { page, blocked, pageErrors } = await openPage(launched());

      await page.goto(`http://127.0.0.1:${server.port}/`);
      await page.waitForSelector('[data-testid="dev-tokens-unavailable"]');
      await page.getByTestId('token').fill(await server.token('pasting-user'));
      await page.getByRole('button', { name: 'Use token' }).click();
      await page.waitForSelector('[data-testid="current-user"]:text-is("pasting-user")');
      await page.waitForSelector('[data-testid="connection-state"][data-state="connected"]');
      const echoId = await startFromForm(page, 'echo', { value: '42' });
      await page.waitForSelector(`${completion(echoId)}[data-status="SUCCEEDED"]`);

      expect(blocked).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    60_000,
  );
});
