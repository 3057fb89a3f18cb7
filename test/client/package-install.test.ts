/**
 * The SDK as a consumer gets it: `npm pack` of packages/client (its prepack compiles src/client),
 * installed from the tarball into a fresh project with only `ws` (and `vue`, for the Vue entry)
 * beside it, imported by name from a plain `node` ESM script — no TypeScript loader, no bundler —
 * that starts a task and waits for it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inheritedEnv } from '../../scripts/lib/local.js';
import { REPO_ROOT } from '../utils/child-server.js';
import { makeTempDir, startTestServer, type TestServer } from '../utils/tserver.js';

const run = promisify(execFile);
const PACKAGE_DIR = path.join(REPO_ROOT, 'packages/client');

/** The environment of npm and node here: none of the npm_* variables of an enclosing `npm test`, no loaders. */
function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env = inheritedEnv();
  for (const key of Object.keys(env)) if (key.startsWith('npm_')) delete env[key];
  return { ...env, ...extra };
}

async function npm(args: readonly string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args], { cwd, env: cleanEnv(), maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** What a consumer writes: the package by name, `ws` for the WebSocket, nothing else. */
const CONSUMER_SCRIPT = `
import WebSocket from 'ws';
import { createTaskClient, isFinal } from '@task-status/client';

const client = createTaskClient({
  url: process.env.TASKS_URL,
  token: process.env.TASKS_TOKEN,
  webSocketImpl: WebSocket,
  onError: () => {},
});
try {
  const started = await client.startTask({ kind: 'echo', input: { value: 'from the tarball' } });
  const done = await client.waitForTask(started.id, { signal: AbortSignal.timeout(30_000) });
  console.log(JSON.stringify({ id: started.id, final: isFinal(done.status), status: done.status, result: done.result, userId: done.userId }));
} finally {
  await client.dispose();
}
`;

/**
 * The Vue entry as a consumer imports it, with `vue` installed beside the package: its composables
 * are there, and one called outside a component says what is missing.
 */
const VUE_CONSUMER_SCRIPT = `
import * as sdkVue from '@task-status/client/vue';
import { version } from 'vue';

let outsideSetup = null;
try {
  sdkVue.useTaskClient();
} catch (error) {
  outsideSetup = error.message;
}
const exported = Object.keys(sdkVue).sort();
console.log(JSON.stringify({ vue: version, exported, outsideSetup }));
`;

describe('the client SDK as an installable package', () => {
  let server: TestServer;
  let consumerDir: string;
  /** Temporary directories, removed afterwards. */
  const dirs: string[] = [];

  beforeAll(async () => {
    server = await startTestServer();
    const packDir = makeTempDir('tss-pack-');
    dirs.push(packDir);
    await npm(['pack', '--pack-destination', packDir], PACKAGE_DIR);
    const packed = fs.readdirSync(packDir).filter((name) => name.endsWith('.tgz'));
    expect(packed).toHaveLength(1);
    const tarball = path.join(packDir, packed[0] as string);

    consumerDir = makeTempDir('tss-consumer-');
    dirs.push(consumerDir);
    fs.writeFileSync(
      path.join(consumerDir, 'package.json'),
      JSON.stringify({ name: 'sdk-consumer', version: '1.0.0', private: true, type: 'module' }),
    );
    await npm(
      ['install', tarball, 'ws@^8', 'vue@^3.3', '--prefer-offline', '--no-audit', '--no-fund'],
      consumerDir,
    );
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('should ship compiled JavaScript with declarations, and no TypeScript source or tooling', () => {
    const installed = path.join(consumerDir, 'node_modules/@task-status/client');
    const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8')) as {
      exports: Record<string, { types?: string; default?: string }>;
    };
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(manifest.exports['./vue']).toEqual({
      types: './dist/vue/index.d.ts',
      default: './dist/vue/index.js',
    });
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/vue/index.js', 'dist/vue/index.d.ts'])
      expect(fs.existsSync(path.join(installed, file)), file).toBe(true);

    const files = fs.readdirSync(installed, { recursive: true, encoding: 'utf8' });
    expect(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([]);
    for (const tool of ['typescript', 'tsx', 'esbuild'])
      expect(fs.existsSync(path.join(consumerDir, 'node_modules', tool)), tool).toBe(false);
  });

  it('should resolve @task-status/client/vue with vue installed beside it, and export the composables', async () => {
    const script = path.join(consumerDir, 'import-vue.mjs');
    fs.writeFileSync(script, VUE_CONSUMER_SCRIPT);
    const { stdout } = await run(process.execPath, [script], {
      cwd: consumerDir,
      env: cleanEnv(),
      timeout: 30_000,
    });
    const printed = JSON.parse(stdout.trim()) as {
      vue: string;
      exported: string[];
      outsideSetup: string | null;
    };
    expect(printed.vue).toMatch(/^3\./);
    expect(printed.exported).toEqual(
      expect.arrayContaining([
        'provideTaskClient',
        'useConnectionState',
        'useTask',
        'useTaskClient',
        'useTaskCompletions',
      ]),
    );
    expect(printed.outsideSetup).toContain('provideTaskClient()');
  }, 45_000);

  it('should start an echo task and wait for its completion from a plain node ESM script', async () => {
    const script = path.join(consumerDir, 'start-and-wait.mjs');
    fs.writeFileSync(script, CONSUMER_SCRIPT);
    const { stdout } = await run(process.execPath, [script], {
      cwd: consumerDir,
      env: cleanEnv({ TASKS_URL: server.url, TASKS_TOKEN: await server.token('package-user') }),
      timeout: 45_000,
    });
    const printed = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(printed).toMatchObject({
      final: true,
      status: 'SUCCEEDED',
      result: 'from the tarball',
      userId: 'package-user',
    });
    const task = await server.gql<{ task: { status: string } | null }>(
      `query ($id: ID!) { task(id: $id) { status } }`,
      { id: printed['id'] },
      await server.token('package-user'),
    );
    expect(task.data?.task).toEqual({ status: 'SUCCEEDED' });
  }, 60_000);
});
