import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/tasks/kinds/kind.js';
import { createDeferred, type Deferred, waitFor } from './utils/deferred.js';
import { getTask, startTask, waitForFinal } from './utils/ops.js';
import { startTestServer } from './utils/tserver.js';

/** Releases of the running `hold` tasks, by their input's `key`. */
const holds = new Map<string, Deferred<void>>();

/** A test kind that runs until the test releases it. */
const holdKind = defineKind({
  name: 'hold',
  description: 'Runs until the test releases it (tests).',
  input: z.strictObject({ key: z.string() }),
  timeoutMs: 60_000,
  attempts: 1,
  async handler({ key }) {
    const hold = createDeferred();
    holds.set(key, hold);
    await hold.promise;
    return key;
  },
});

describe('MAX_RUNNING_PER_USER (embedded)', () => {
  it("should give other users' tasks the free slots while one user is at the cap, and run the held task later", async () => {
    // WORKER_CONCURRENCY=2: the cap is 1 by default.
    const server = await startTestServer({ kinds: [holdKind], env: { WORKER_CONCURRENCY: '2' } });
    const carol = await server.token('carol');
    const dave = await server.token('dave');

    const first = await startTask(server, carol, 'hold', { key: 'carol-1' });
    await waitFor(() => holds.get('carol-1'), "carol's first task to run");
    const second = await startTask(server, carol, 'hold', { key: 'carol-2' });
    const other = await startTask(server, dave, 'echo', { value: 'not starved' });

    expect((await waitForFinal(server, dave, other.id)).status).toBe('SUCCEEDED');
    expect((await getTask(server, carol, second.id)).status).toBe('QUEUED');
    expect(holds.has('carol-2')).toBe(false);

    holds.get('carol-1')?.resolve();
    expect((await waitForFinal(server, carol, first.id)).status).toBe('SUCCEEDED');
    await waitFor(() => holds.get('carol-2'), "carol's second task to run once her first ended");
    holds.get('carol-2')?.resolve();
    const done = await waitForFinal(server, carol, second.id);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.attempts).toBe(1);
  });
});
