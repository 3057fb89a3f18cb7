import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/tasks/kinds/kind.js';
import { CHILD_SECRET, spawnChild, startChildServer } from './utils/child-server.js';
import { createDeferred, type Deferred, waitFor } from './utils/deferred.js';
import { baseOf, getTask, startTask, waitForFinal } from './utils/ops.js';
import { canMountSmallDisk, mountSmallDisk, type SmallDisk } from './utils/small-disk.js';
import { startTestServer, type TestServer } from './utils/tserver.js';

const CAN_MOUNT = canMountSmallDisk();
if (!CAN_MOUNT && process.env['CI'] === 'true') {
  throw new Error('mounting a tmpfs failed: the full-disk tests need root (or CAP_SYS_ADMIN) on CI');
}

const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { id status } }`;
const TASKS = 'query { tasks(first: 50) { nodes { id status } } }';

/** Releases of the running `gate` tasks, by their input's `key`. */
const gates = new Map<string, Deferred<number>>();

/** A test kind that runs until released, then returns a string of the size released with. */
const gateKind = defineKind({
  name: 'gate',
  description: 'Waits for the test to release it; returns a string of the released size (tests).',
  input: z.strictObject({ key: z.string() }),
  timeoutMs: 60_000,
  attempts: 1,
  async handler({ key }) {
    const gate = createDeferred<number>();
    gates.set(key, gate);
    return 'x'.repeat(await gate.promise);
  },
});

function newDisk(): SmallDisk {
  const disk = mountSmallDisk();
  if (!disk) throw new Error('could not mount a tmpfs');
  return disk;
}

/** POSTs startTask and returns the raw response (status, headers) and its body. */
async function postStart(server: { url: string }, token: string, input: Record<string, unknown>) {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: START, variables: { input } }),
  });
  const body = (await response.json()) as {
    data?: { startTask: { id: string; status: string } } | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
  return { response, body };
}

async function readyz(server: { url: string }): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${baseOf(server)}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The store's problem as /readyz reports it, or `null` when ready. */
async function storeProblem(server: { url: string }): Promise<string | null> {
  const { status, body } = await readyz(server);
  if (status === 200) return null;
  const checks = body['checks'] as Record<string, string> | undefined;
  return checks?.['store'] ?? JSON.stringify(body);
}

async function taskIds(server: TestServer, token: string): Promise<string[]> {
  const response = await server.gql<{ tasks: { nodes: { id: string }[] } }>(TASKS, {}, token);
  expect(response.errors).toBeUndefined();
  return response.data?.tasks.nodes.map((node) => node.id) ?? [];
}

describe.skipIf(!CAN_MOUNT)('embedded store on a full disk', () => {
  it('should answer SERVICE_UNAVAILABLE with Retry-After, store nothing, and keep serving', async () => {
    const disk = newDisk();
    const server = await startTestServer({ dataDir: disk.dir });
    const token = await server.token('full-disk-start');
    disk.fill();

    for (const value of ['first', 'second']) {
      const { response, body } = await postStart(server, token, {
        kind: 'echo',
        input: { value },
        idempotencyKey: 'the-key',
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('5');
      const error = body.errors?.[0];
      expect(error?.extensions?.['code']).toBe('SERVICE_UNAVAILABLE');
      expect(error?.message).toContain('the disk is full');
      expect(error?.message).toContain(disk.dir);
    }
    // Reads are served, and nothing of the refused starts was stored.
    expect(await taskIds(server, token)).toEqual([]);

    disk.free();
    const { body } = await postStart(server, token, {
      kind: 'echo',
      input: { value: 'third' },
      idempotencyKey: 'the-key',
    });
    const started = body.data?.startTask;
    if (!started) throw new Error(`startTask failed: ${JSON.stringify(body.errors)}`);
    expect(await taskIds(server, token)).toEqual([started.id]);
    expect((await waitForFinal(server, token, started.id)).result).toBe('third');
  });

  it('should report the store not ready while it cannot write, and ready again once space returns', async () => {
    const disk = newDisk();
    const server = await startTestServer({ dataDir: disk.dir });
    const token = await server.token('full-disk-ready');
    expect(await storeProblem(server)).toBeNull();

    disk.fill();
    const { response } = await postStart(server, token, { kind: 'echo', input: { value: 1 } });
    expect(response.status).toBe(503);
    const problem = await storeProblem(server);
    expect(problem).toContain('the task store cannot write: the disk is full');

    disk.free();
    await waitFor(async () => (await storeProblem(server)) === null, '/readyz to be ready again');
  });

  it('should write a run finished on a full disk once space returns, once, and claim what waited', async () => {
    const disk = newDisk();
    const server = await startTestServer({
      dataDir: disk.dir,
      kinds: [gateKind],
      env: { WORKER_CONCURRENCY: '1', MAX_RUNNING_PER_USER: '0' },
    });
    const token = await server.token('full-disk-outcome');
    const gated = await startTask(server, token, 'gate', { key: 'outcome' });
    await waitFor(() => gates.get('outcome'), 'the gate task to run');
    // The only slot is taken: this one waits in the queue.
    const queued = await startTask(server, token, 'echo', { value: 'waited' });

    disk.fill();
    gates.get('outcome')?.resolve(100_000);
    await waitFor(
      async () => (await storeProblem(server))?.includes('cannot write') === true,
      'the outcome write to fail',
    );
    expect((await getTask(server, token, gated.id)).status).toBe('RUNNING');
    expect((await getTask(server, token, queued.id)).status).toBe('QUEUED');

    disk.free();
    const finished = await waitForFinal(server, token, gated.id);
    expect(finished.status).toBe('SUCCEEDED');
    expect(finished.attempts).toBe(1);
    expect((finished.result as string).length).toBe(100_000);
    expect((await waitForFinal(server, token, queued.id)).status).toBe('SUCCEEDED');

    await server.stop();
    const db = new Database(path.join(disk.dir, 'tasks.sqlite'), { readonly: true });
    const finals = db
      .prepare<[string], { n: number }>(
        "SELECT count(*) AS n FROM events WHERE final = 1 AND json_extract(data, '$.id') = ?",
      )
      .get(gated.id);
    db.close();
    expect(finals?.n).toBe(1);
  });
});

describe.skipIf(!CAN_MOUNT)('embedded start-up on a full disk', () => {
  it('should start with an existing store, serve reads, and recover and run work once space returns', {
    timeout: 60_000,
  }, async () => {
    const disk = newDisk();
    const first = await startChildServer({ dataDir: disk.dir, env: { WORKER_CONCURRENCY: '1' } });
    const token = await first.token('full-disk-restart');
    const sleeping = await startTask(first, token, 'sleep', { ms: 3_600_000 });
    await waitFor(
      async () => (await getTask(first, token, sleeping.id)).status === 'RUNNING',
      'the sleep to run',
    );
    disk.fill();
    first.kill('SIGKILL');
    await first.waitExit();

    // Two slots: the interrupted sleep takes one again once recovered, the echo the other.
    const second = await startChildServer({
      dataDir: disk.dir,
      env: { WORKER_CONCURRENCY: '2', MAX_RUNNING_PER_USER: '0' },
    });
    expect(await storeProblem(second)).toContain('the disk is full');
    // Reads are served: the interrupted task as the crash left it.
    expect((await getTask(second, token, sleeping.id)).status).toBe('RUNNING');
    const errors = second
      .stderr()
      .split('\n')
      .filter((line) => line.includes('"level":"error"'));
    expect(errors, second.stderr()).toHaveLength(1);
    expect(errors[0]).toContain('the task store cannot write');

    disk.free();
    await waitFor(async () => (await storeProblem(second)) === null, '/readyz to be ready again');
    await waitFor(
      async () => (await getTask(second, token, sleeping.id)).attempts === 2,
      'the interrupted task to run again',
    );
    const echo = await startTask(second, token, 'echo', { value: 'after' });
    expect((await waitForFinal(second, token, echo.id)).status).toBe('SUCCEEDED');
  });

  it('should refuse to start a new store on a full disk, naming DATA_DIR and the cause', async () => {
    const disk = newDisk();
    disk.fill();
    const child = await spawnChild({ dataDir: disk.dir, env: { AUTH_JWT_SECRET: CHILD_SECRET } });
    const status = await child.waitExit();
    expect(status.code).not.toBe(0);
    expect(child.stderr()).toContain(`cannot open the task store in DATA_DIR ${disk.dir}: the disk is full`);
  });
});
