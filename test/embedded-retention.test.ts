import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createEmbeddedBackend } from '../src/backends/embedded/embedded-backend.js';
import { createLogger } from '../src/logger.js';
import { KindRegistry } from '../src/tasks/kind-registry.js';
import { BUILT_IN_KINDS } from '../src/tasks/kinds/index.js';
import { waitFor } from './utils/deferred.js';
import { COMPLETED, extensionsOf, lastEventCursor, startTask, waitForFinal } from './utils/ops.js';
import { makeTempDir, startTestServer } from './utils/tserver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { id status } }`;
const TASK = 'query($id: ID!) { task(id: $id) { id status } }';

describe('TASK_RETENTION (embedded)', () => {
  it('should purge finished tasks with their idempotency keys and expire cursors from before the purge', async () => {
    const server = await startTestServer({ env: { TASK_RETENTION: '1s' } });
    const userId = 'retention-user';
    const token = await server.token(userId);
    const before = await lastEventCursor(server, token);

    const started = await server.gql<{ startTask: { id: string } }>(
      START,
      { input: { kind: 'echo', input: { value: 'old' }, idempotencyKey: 'kept-for-a-while' } },
      token,
    );
    const finished = started.data?.startTask;
    if (!finished) throw new Error(`startTask failed: ${JSON.stringify(started.errors)}`);
    await waitForFinal(server, token, finished.id);
    const running = await startTask(server, token, 'sleep', { ms: 60_000 });

    await waitFor(async () => {
      const response = await server.gql<{ task: unknown }>(TASK, { id: finished.id }, token);
      return response.data?.task === null;
    }, 'the finished task to be purged');
    // Not final: kept, however old.
    const stillThere = await server.gql<{ task: { status: string } | null }>(TASK, { id: running.id }, token);
    expect(stillThere.data?.task?.status).toBe('RUNNING');

    // The key went with its task: the same key starts a new task.
    const again = await server.gql<{ startTask: { id: string } }>(
      START,
      { input: { kind: 'echo', input: { value: 'new' }, idempotencyKey: 'kept-for-a-while' } },
      token,
    );
    expect(again.errors).toBeUndefined();
    expect(again.data?.startTask.id).not.toBe(finished.id);

    // The events before the purge are gone: resuming from before them is refused, not silently short.
    const sub = collect(createWsClient(server.wsUrl, token), COMPLETED, { u: userId, after: before });
    await sub.done;
    expect(sub.values).toEqual([]);
    expect(sub.errors.map((error) => extensionsOf(error)['code'])).toEqual(['CURSOR_EXPIRED']);
  });

  it('should upgrade a store of an earlier version and purge the tasks that finished in it', async () => {
    const dataDir = makeTempDir('tss-retention-upgrade-');
    const old = Date.now() - 10 * 86_400_000;
    const db = new Database(path.join(dataDir, 'tasks.sqlite'));
    db.pragma('journal_mode = WAL');
    // The tables as the version before `finished_at` left them.
    db.exec(`
      CREATE TABLE tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL,
        status TEXT NOT NULL, external INTEGER NOT NULL, run_at INTEGER NOT NULL, idempotency_key TEXT, data TEXT NOT NULL);
      CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, user_id TEXT NOT NULL, final INTEGER NOT NULL,
        data TEXT NOT NULL, appended_at INTEGER, user_seq INTEGER);
      CREATE TABLE trimmed_logs (user_id TEXT PRIMARY KEY, trimmed_through INTEGER NOT NULL,
        user_trimmed_through INTEGER NOT NULL DEFAULT 0);
    `);
    const insert = db.prepare(
      'INSERT INTO tasks (id, user_id, status, external, run_at, idempotency_key, data) VALUES (?, ?, ?, 0, ?, ?, ?)',
    );
    insert.run(
      'done-long-ago',
      'u',
      'SUCCEEDED',
      old,
      'old-key',
      JSON.stringify({ id: 'done-long-ago', finishedAt: old }),
    );
    insert.run(
      'still-queued',
      'u',
      'QUEUED',
      old,
      null,
      JSON.stringify({ id: 'still-queued', finishedAt: null }),
    );
    db.close();

    const backend = createEmbeddedBackend({
      dataDir,
      eventRetention: 1_000,
      taskRetentionMs: 86_400_000,
      kinds: new KindRegistry(BUILT_IN_KINDS),
      logger: createLogger('silent'),
    });
    try {
      await waitFor(
        async () => (await backend.tasks.get('done-long-ago')) === null,
        'the old task to be purged',
      );
      expect(await backend.tasks.get('still-queued')).not.toBeNull();
      expect(await backend.tasks.findByIdempotencyKey('u', 'old-key')).toBeNull();
    } finally {
      await backend.close();
    }
  });
});
