/**
 * Graceful drain of the real process (embedded mode) on SIGTERM/SIGINT: readiness drops, sockets
 * close with 1001, running tasks finish within DRAIN_GRACE_MS or go back to the queue, exit 0; a
 * second signal exits at once. The "other instance" a client moves to is the next process on the
 * same data directory (an embedded store belongs to one process at a time); the distributed
 * version, with two gateways up at once, is test/ops-distributed.test.ts.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { SIGNAL_COPY_WINDOW_MS } from '../src/process-lifecycle.js';
import { type ChildServer, startChildServer } from './utils/child-server.js';
import { waitFor } from './utils/deferred.js';
import { getTask, lastEventCursor, startTask, waitForFinal } from './utils/ops.js';
import { ResumingSubscriber } from './utils/resuming-subscriber.js';
import { makeTempDir } from './utils/tserver.js';

async function readyz(server: ChildServer): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${server.port}/readyz`);
  return { status: response.status, body: await response.json() };
}

/** Resolves with the HTTP status that refused a WebSocket upgrade, or 101 when it was accepted. */
function upgradeStatus(wsUrl: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
    socket.once('open', () => {
      socket.terminate();
      resolve(101);
    });
    socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    socket.once('error', () => {});
  });
}

describe('drain on SIGTERM (embedded mode)', () => {
  it('drops readiness, closes sockets with 1001, lets the running task finish, exits 0, and the next instance resumes the client with nothing lost', async () => {
    const dataDir = makeTempDir('tss-drain-');
    const env = { DRAIN_GRACE_MS: '60000', LOG_LEVEL: 'info' };
    const first = await startChildServer({ dataDir, env });
    const token = await first.token('drain-user');
    const subscriber = new ResumingSubscriber(token, 'drain-user', await lastEventCursor(first, token));
    subscriber.connect(first.wsUrl);

    const echo = await startTask(first, token, 'echo', { value: 'before the drain' });
    await subscriber.until([echo.id], 'the first completion');
    const running = await startTask(first, token, 'sleep', { ms: 3_000 });
    await waitFor(
      async () => (await getTask(first, token, running.id)).status === 'RUNNING',
      'the sleep to run',
    );

    const sse = await fetch(first.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'text/event-stream',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query: 'subscription { taskCompleted(userId: "drain-user") { cursor } }' }),
    });
    expect(sse.status).toBe(200);
    const sseEnded = sse.text().then(
      () => 'ended',
      () => 'cut',
    );

    first.kill('SIGTERM');
    expect(await subscriber.closeOf(0, 'the socket to close')).toBe(1001);
    expect(await sseEnded).toBe('cut');
    // Still listening while the task finishes: not ready, and no new WebSocket.
    expect(await readyz(first)).toEqual({ status: 503, body: { status: 'draining' } });
    expect((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status).toBe(200);
    expect(await upgradeStatus(first.wsUrl)).toBe(503);
    expect(await first.waitExit()).toEqual({ code: 0, signal: null });
    expect(first.stderr()).toContain('"msg":"drained: exiting"');

    const second = await startChildServer({ dataDir, env });
    subscriber.connect(second.wsUrl);
    const finished = await waitForFinal(second, token, running.id);
    expect(finished).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    await subscriber.until([running.id], 'the completion that happened during the drain');
    const after = await startTask(second, token, 'echo', { value: 'after the drain' });
    await subscriber.until([after.id], 'a live completion on the next instance');

    expect(subscriber.ids()).toEqual([echo.id, running.id, after.id]);
    // The first may have raced the subscription's replay; the drain's one is replayed, the last live.
    expect(subscriber.events.slice(1).map((event) => event.replayed)).toEqual([true, false]);
    expect(subscriber.errors).toEqual([]);
    second.kill('SIGTERM');
    expect((await second.waitExit()).code).toBe(0);
  });

  it('hands a task that outlives DRAIN_GRACE_MS back to the queue unspent, exits 0, and the next instance runs it', async () => {
    const dataDir = makeTempDir('tss-drain-');
    const env = { DRAIN_GRACE_MS: '200', LOG_LEVEL: 'info' };
    const first = await startChildServer({ dataDir, env });
    const token = await first.token('handback-user');
    const long = await startTask(first, token, 'sleep', { ms: 2_000 });
    await waitFor(
      async () => (await getTask(first, token, long.id)).status === 'RUNNING',
      'the sleep to run',
    );

    first.kill('SIGINT');
    expect(await first.waitExit()).toEqual({ code: 0, signal: null });
    expect(first.stderr()).not.toContain('INTERRUPTED');

    const second = await startChildServer({ dataDir, env });
    const finished = await waitForFinal(second, token, long.id);
    // Handed back, the attempt was not spent: the next instance ran it as attempt 1.
    expect(finished).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    second.kill('SIGTERM');
    expect((await second.waitExit()).code).toBe(0);
  });

  it('exits at once, non-zero, on a second signal during the drain', async () => {
    const first = await startChildServer({ env: { DRAIN_GRACE_MS: '600000', LOG_LEVEL: 'info' } });
    const token = await first.token('impatient-user');
    const long = await startTask(first, token, 'sleep', { ms: 600_000 });
    await waitFor(
      async () => (await getTask(first, token, long.id)).status === 'RUNNING',
      'the sleep to run',
    );

    first.kill('SIGTERM');
    await waitFor(() => first.stderr().includes('"msg":"draining"'), 'the drain to begin');
    expect((await readyz(first)).status).toBe(503);
    // Past the window in which a second signal counts as a copy of the first.
    await new Promise((resolve) => setTimeout(resolve, SIGNAL_COPY_WINDOW_MS + 200));
    first.kill('SIGTERM');
    expect(await first.waitExit()).toEqual({ code: 1, signal: null });
    expect(first.stderr()).toContain('"msg":"second signal: exiting now"');
  });

  it('takes a copy of the signal (process group plus npm forwarding it) as one signal and still drains to exit 0', async () => {
    const first = await startChildServer({ env: { DRAIN_GRACE_MS: '60000', LOG_LEVEL: 'info' } });
    const token = await first.token('group-signal-user');
    const running = await startTask(first, token, 'sleep', { ms: 2_000 });
    await waitFor(
      async () => (await getTask(first, token, running.id)).status === 'RUNNING',
      'the sleep to run',
    );
    first.kill('SIGINT');
    // Two signals sent at once merge into one delivery; the copy arrives once the first is handled.
    await waitFor(() => first.stderr().includes('"msg":"draining"'), 'the drain to begin');
    first.kill('SIGINT');
    expect(await first.waitExit()).toEqual({ code: 0, signal: null });
    expect(first.stderr()).toContain('"msg":"signal copy ignored: already draining"');
    expect(first.stderr()).not.toContain('second signal');

    const next = await startChildServer({ dataDir: first.dataDir, env: { LOG_LEVEL: 'info' } });
    // Finished within the drain: the next instance finds it done, not handed back.
    expect(await getTask(next, token, running.id)).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    next.kill('SIGTERM');
    expect((await next.waitExit()).code).toBe(0);
  });
});
