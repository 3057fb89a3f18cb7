import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Kind, parse, print, validate } from 'graphql';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, buildApp, type DevTokens } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { schema } from '../src/schema/index.js';
import { waitFor } from './utils/deferred.js';
import { makeTempDir, startTestServer } from './utils/tserver.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const HAS_CHROMIUM = fs.existsSync(CHROMIUM);
/** Without chromium the browser test is skipped locally, and fails on CI rather than pass unseen. */
const itInBrowser = HAS_CHROMIUM || process.env['CI'] === 'true' ? it : it.skip;

/** The options object the page hands to `renderYogaGraphiQL`. */
interface GraphiQLOptions {
  subscriptionsProtocol?: string;
  headers?: string;
  defaultQuery?: string;
}

interface DevServer {
  readonly url: string;
  readonly tokens: DevTokens;
  gql<T>(query: string, variables?: Record<string, unknown>): Promise<{ data?: T; errors?: unknown[] }>;
}

let devApp: App | undefined;
let dev: DevServer;

/** The service as `npm start` runs it with no AUTH_* variable: an ephemeral secret and dev tokens. */
beforeAll(async () => {
  const config = loadConfig({ PORT: '0', DATA_DIR: makeTempDir('tss-graphiql-'), LOG_LEVEL: 'silent' });
  expect(config.auth).toMatchObject({ mode: 'secret', ephemeral: true });
  devApp = buildApp({ config });
  const { url, devTokens } = await devApp.start();
  if (!devTokens) throw new Error('no dev tokens without AUTH_* outside production');
  dev = {
    url,
    tokens: devTokens,
    async gql(query, variables) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${devTokens.user}` },
        body: JSON.stringify({ query, variables }),
      });
      return response.json() as never;
    },
  };
});

afterAll(async () => {
  await devApp?.stop();
});

async function fetchGraphiQL(url: string): Promise<{ status: number; type: string | null; html: string }> {
  const response = await fetch(url, { headers: { accept: 'text/html' } });
  return { status: response.status, type: response.headers.get('content-type'), html: await response.text() };
}

function graphiqlOptions(html: string): GraphiQLOptions {
  const match = /renderYogaGraphiQL\(\s*[^,]+,\s*(\{.*\})\s*,?\s*\)/.exec(html);
  if (!match?.[1]) throw new Error('no renderYogaGraphiQL(..., options) call in the page');
  return JSON.parse(match[1]) as GraphiQLOptions;
}

function headersOf(options: GraphiQLOptions): Record<string, string> {
  return JSON.parse(options.headers ?? '{}') as Record<string, string>;
}

describe('GraphiQL at /graphql', () => {
  it('is served as HTML to a browser', async () => {
    const page = await fetchGraphiQL(dev.url);
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/^text\/html/);
    expect(page.html).toContain('renderYogaGraphiQL');
  });

  it('loads nothing from another host: no external script, stylesheet, font, worker or CDN', async () => {
    const { html } = await fetchGraphiQL(dev.url);
    const external = {
      scriptSrc: /<script\b[^>]*\bsrc\s*=/gi,
      linkHref: /<link\b[^>]*\bhref\s*=\s*["']?(?:https?:)?\/\/[^"'\s>]*/gi,
      cssUrl: /url\(\s*["']?(?:https?:)?\/\/[^)]*\)/gi,
      cssImport: /@import\s+(?:url\()?\s*["']?(?:https?:)?\/\//gi,
      cdn: /\b(?:unpkg\.com|jsdelivr|cdnjs|googleapis\.com|gstatic\.com)\b|\/\/cdn\./gi,
      importScripts: /importScripts\(\s*["'`](?:https?:)?\/\//gi,
      worker: /new\s+(?:Shared)?Worker\(\s*["'`](?:https?:)?\/\//gi,
    };
    for (const [what, pattern] of Object.entries(external)) {
      expect(html.match(pattern) ?? [], `${what} pointing outside the page`).toEqual([]);
    }
  });

  it('runs subscriptions over WebSocket (graphql-ws)', async () => {
    const { html } = await fetchGraphiQL(dev.url);
    expect(graphiqlOptions(html).subscriptionsProtocol).toBe('WS');
  });

  it('in dev mode opens with the printed user token in its headers, and that token works', async () => {
    const { html } = await fetchGraphiQL(dev.url);
    expect(headersOf(graphiqlOptions(html))).toEqual({ Authorization: `Bearer ${dev.tokens.user}` });
    const viewer = await dev.gql<{ viewer: { userId: string } }>('query { viewer { userId } }');
    expect(viewer.data?.viewer.userId).toBe(dev.tokens.userId);
  });

  it('opens with examples that the schema accepts, startTasks among them, and StartMany runs as shown', async () => {
    const { html } = await fetchGraphiQL(dev.url);
    const document = parse(graphiqlOptions(html).defaultQuery ?? '');
    expect(validate(schema, document)).toEqual([]);
    const names = document.definitions.flatMap((definition) =>
      definition.kind === Kind.OPERATION_DEFINITION && definition.name ? [definition.name.value] : [],
    );
    expect(names).toEqual(expect.arrayContaining(['Listen', 'Start', 'StartMany', 'Recent']));

    const response = await fetch(dev.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${dev.tokens.user}` },
      body: JSON.stringify({ query: print(document), operationName: 'StartMany' }),
    });
    const body = (await response.json()) as {
      data?: {
        startTasks: {
          task: { id: string; kind: string } | null;
          error: { code: string; field: string } | null;
        }[];
      };
    };
    expect(body.data?.startTasks).toEqual([
      { task: expect.objectContaining({ kind: 'echo' }), error: null },
      { task: expect.objectContaining({ kind: 'sleep' }), error: null },
      { task: null, error: expect.objectContaining({ code: 'BAD_USER_INPUT', field: 'kind' }) },
    ]);
    // The user's completions of the suites below start after these: wait until they are in the log.
    for (const { task } of body.data?.startTasks ?? []) {
      if (!task) continue;
      await waitFor(async () => {
        const found = await dev.gql<{ task: { status: string } }>(
          'query($id: ID!) { task(id: $id) { status } }',
          {
            id: task.id,
          },
        );
        return found.data?.task.status === 'SUCCEEDED';
      }, `the example's ${task.kind} task`);
    }
  });

  it('holds no token when a key is configured', async () => {
    const server = await startTestServer();
    const { html } = await fetchGraphiQL(server.url);
    expect(headersOf(graphiqlOptions(html))).toEqual({});
  });
});

describe('GraphiQL in a real browser, offline', () => {
  let browser: Browser | undefined;
  afterAll(async () => {
    await browser?.close();
  });

  itInBrowser(
    'renders with every non-local request blocked and shows a completion from a subscription run in its editor',
    async () => {
      if (!HAS_CHROMIUM) {
        throw new Error(`CI=true but ${CHROMIUM} is missing: install it with apt-get install -y chromium`);
      }
      // Subscribe after the newest event, so the completion cannot race the subscription.
      const warmup = await dev.gql<{ startTask: { id: string } }>(
        'mutation { startTask(input: { kind: "echo", input: { value: "warm-up" } }) { id } }',
      );
      const warmupId = warmup.data?.startTask.id;
      await waitFor(async () => {
        const task = await dev.gql<{ task: { status: string } }>(
          'query($id: ID!) { task(id: $id) { status } }',
          {
            id: warmupId,
          },
        );
        return task.data?.task.status === 'SUCCEEDED';
      }, 'the warm-up task');
      const viewer = await dev.gql<{ viewer: { lastEventCursor: string } }>(
        'query { viewer { lastEventCursor } }',
      );
      const after = viewer.data?.viewer.lastEventCursor;
      expect(after).toEqual(expect.any(String));

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
      const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
      const blocked: string[] = [];
      await context.route('**/*', (route) => {
        const requested = new URL(route.request().url());
        if (requested.hostname === '127.0.0.1') return route.continue();
        blocked.push(requested.href);
        return route.abort('internetdisconnected');
      });
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      const sockets: string[] = [];
      const sent: Record<string, unknown>[] = [];
      const received: Record<string, unknown>[] = [];
      const parse = (payload: string | Buffer) => JSON.parse(String(payload)) as Record<string, unknown>;
      page.on('websocket', (socket) => {
        sockets.push(socket.url());
        socket.on('framesent', (frame) => sent.push(parse(frame.payload)));
        socket.on('framereceived', (frame) => received.push(parse(frame.payload)));
      });

      const subscription = `subscription { taskCompleted(userId: "${dev.tokens.userId}", after: "${after}") { cursor replayed task { id status result } } }`;
      await page.goto(`${dev.url}?query=${encodeURIComponent(subscription)}`);
      const run = page.getByRole('button', { name: /^Execute query/ });
      await run.waitFor({ state: 'visible', timeout: 20_000 });
      await waitFor(
        async () =>
          ((await page.locator('.graphiql-query-editor').textContent()) ?? '').includes('taskCompleted'),
        'the subscription in the query editor',
      );
      await run.click();
      const subscribe = await waitFor(
        () => sent.find((message) => message['type'] === 'subscribe'),
        'GraphiQL to send the subscription over graphql-ws',
      );
      expect(subscribe).toMatchObject({
        payload: { extensions: { headers: { Authorization: `Bearer ${dev.tokens.user}` } } },
      });

      const started = await dev.gql<{ startTask: { id: string } }>(
        'mutation { startTask(input: { kind: "echo", input: { value: "shown in GraphiQL" } }) { id } }',
      );
      const taskId = started.data?.startTask.id;
      if (!taskId) throw new Error('startTask returned no id');
      const shown = await waitFor(async () => {
        // Monaco renders spaces as no-break spaces.
        const text = ((await page.locator('.graphiql-response').textContent()) ?? '').replaceAll(
          '\u00a0',
          ' ',
        );
        return text.includes(taskId) && text.includes('SUCCEEDED') && text;
      }, 'the completion in the result pane');
      expect(shown).toContain('shown in GraphiQL');
      expect(shown).not.toContain('UNAUTHENTICATED');
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}graphiql.png` });

      expect(received.find((message) => message['type'] === 'next')).toMatchObject({
        id: subscribe['id'],
        payload: { data: { taskCompleted: { replayed: false, task: { id: taskId, status: 'SUCCEEDED' } } } },
      });
      expect(sockets).toEqual([dev.url.replace(/^http/, 'ws')]);
      expect(blocked).toEqual([]);
      expect(pageErrors).toEqual([]);
    },
    45_000,
  );
});
