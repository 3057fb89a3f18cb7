import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { claimForRun, recoverInterrupted } from '../src/tasks/claims.js';
import { KindRegistry } from '../src/tasks/kind-registry.js';
import { defineKind } from '../src/tasks/kinds/kind.js';
import { newTask, type Task, TaskStatus } from '../src/tasks/task.js';

const kinds = new KindRegistry([
  defineKind({
    name: 'thrice',
    description: 'three attempts',
    input: z.unknown(),
    attempts: 3,
    handler: async () => null,
  }),
  defineKind({ name: 'outside', description: 'run elsewhere', input: z.unknown(), external: true }),
]);

const CREATED = 1_000;
const NOW = 5_000;

function task(overrides: Partial<Task> = {}): Task {
  return { ...newTask({ userId: 'u', kind: 'thrice', input: null, external: false }, CREATED), ...overrides };
}

/** A task its worker left RUNNING during `attempt`. */
function running(attempt: number, overrides: Partial<Task> = {}): Task {
  return task({
    status: TaskStatus.Running,
    attempts: attempt,
    startedAt: 2_000,
    progress: 0.5,
    ...overrides,
  });
}

describe('claimForRun with the job that points at the task', () => {
  const queued = task({ version: 3, attempts: 1 });
  const fresh = { queued, redelivered: false };
  const redelivered = { queued, redelivered: true };

  it('should claim the QUEUED version the job was queued for', () => {
    expect(claimForRun(kinds, NOW, fresh)(queued)).toMatchObject({ status: TaskStatus.Running, attempts: 2 });
  });

  it('should leave a later QUEUED version (a retry due later) to its own job', () => {
    const retried = task({ version: 6, attempts: 2, runAt: NOW + 60_000 });
    expect(claimForRun(kinds, NOW, fresh)(retried)).toBeNull();
    expect(claimForRun(kinds, NOW, redelivered)(retried)).toBeNull();
  });

  it('should not touch a RUNNING task when handed out for the first time (a stale copy must not start a second run)', () => {
    expect(claimForRun(kinds, NOW, fresh)(running(2, { version: 4 }))).toBeNull();
  });

  it('should resume the interrupted run when the job comes back (its worker died), again and again', () => {
    expect(claimForRun(kinds, NOW, redelivered)(running(2, { version: 4 }))).toMatchObject({ attempts: 3 });
    expect(claimForRun(kinds, NOW, redelivered)(running(3, { version: 5 }))).toMatchObject({
      status: TaskStatus.Failed,
      error: { code: 'INTERRUPTED' },
    });
  });
});

describe('claimForRun', () => {
  it('should claim a QUEUED task as its next attempt', () => {
    const claimed = claimForRun(kinds, NOW)(task({ attempts: 1, error: { code: 'X', message: 'y' } }));
    expect(claimed).toMatchObject({
      status: TaskStatus.Running,
      attempts: 2,
      startedAt: NOW,
      progress: 0,
      error: null,
    });
  });

  it('should resume an interrupted RUNNING task directly as its next attempt while attempts remain', () => {
    const resumed = claimForRun(kinds, NOW)(running(2));
    expect(resumed).toMatchObject({ status: TaskStatus.Running, attempts: 3, startedAt: NOW, progress: 0 });
  });

  it('should fail an interrupted task on its last attempt as INTERRUPTED', () => {
    const failed = claimForRun(kinds, NOW)(running(3));
    expect(failed).toMatchObject({ status: TaskStatus.Failed, attempts: 3, finishedAt: NOW });
    expect(failed?.error?.code).toBe('INTERRUPTED');
    expect(failed?.error?.message).toContain('attempt 3 of 3');
  });

  it('should give a task of an unknown kind one attempt', () => {
    const failed = claimForRun(kinds, NOW)(running(1, { kind: 'gone' }));
    expect(failed).toMatchObject({ status: TaskStatus.Failed, error: { code: 'INTERRUPTED' } });
    expect(failed?.error?.message).toContain('attempt 1 of 1');
  });

  it('should leave external and final tasks alone', () => {
    const claim = claimForRun(kinds, NOW);
    expect(claim(task({ kind: 'outside', external: true }))).toBeNull();
    expect(claim(running(1, { kind: 'outside', external: true }))).toBeNull();
    for (const status of [TaskStatus.Succeeded, TaskStatus.Failed, TaskStatus.Cancelled]) {
      expect(claim(task({ status, attempts: 1, finishedAt: 3_000 }))).toBeNull();
    }
  });
});

describe('recoverInterrupted', () => {
  it('should queue an interrupted task again, due now, keeping the spent attempt', () => {
    const recovered = recoverInterrupted(kinds, NOW)(running(1));
    expect(recovered).toMatchObject({
      status: TaskStatus.Queued,
      attempts: 1,
      runAt: NOW,
      progress: 0,
      startedAt: null,
    });
  });

  it('should fail an interrupted task on its last attempt as INTERRUPTED', () => {
    const failed = recoverInterrupted(kinds, NOW)(running(3));
    expect(failed).toMatchObject({ status: TaskStatus.Failed, attempts: 3, finishedAt: NOW });
    expect(failed?.error).toMatchObject({
      code: 'INTERRUPTED',
      message: expect.stringContaining('attempt 3 of 3'),
    });
  });

  it('should leave tasks that are not RUNNING, and external ones, alone', () => {
    const recover = recoverInterrupted(kinds, NOW);
    expect(recover(task())).toBeNull();
    expect(recover(task({ status: TaskStatus.Succeeded, attempts: 1 }))).toBeNull();
    expect(recover(running(1, { kind: 'outside', external: true }))).toBeNull();
  });

  it('should agree with claimForRun on when an interrupted task fails', () => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const viaClaim = claimForRun(kinds, NOW)(running(attempt));
      const viaRecovery = recoverInterrupted(kinds, NOW)(running(attempt));
      expect(viaClaim?.status === TaskStatus.Failed).toBe(viaRecovery?.status === TaskStatus.Failed);
      if (viaClaim?.status === TaskStatus.Failed) expect(viaClaim.error).toEqual(viaRecovery?.error);
    }
  });
});
