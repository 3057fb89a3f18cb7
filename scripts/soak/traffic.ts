/**
 * The soak's tasks: a seeded mix of plans (echo, sleep, cancelled mid-run, external completed or
 * failed by the back end), each started with an idempotency key so a retried start is one task,
 * and the service's own account of every task at the end.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { between, options, rng } from './options.js';
import { serviceCall } from './service-calls.js';

type Plan = 'echo' | 'sleep' | 'cancel' | 'external-complete' | 'external-fail';
interface Started {
  readonly id: string;
  readonly user: string;
  readonly plan: Plan;
}
export const started = new Map<string, Started>();
export const startFailures: string[] = [];
/** Cancels and external completions still to be sent. */
export const followUps = new Set<Promise<void>>();
/** The first finished task of each user (the cursor its clients resume after). */
export const warmUpIds = new Set<string>();

export const START = `mutation($input: StartTaskInput!) { startTask(input: $input) { id status } }`;

export async function startOne(index: number, user: string, plan: Plan): Promise<void> {
  const [kind, input]: [string, object] =
    plan === 'echo'
      ? ['echo', { value: { i: index } }]
      : plan === 'sleep'
        ? ['sleep', { ms: between(100, 1_500) }]
        : plan === 'cancel'
          ? ['sleep', { ms: between(4_000, 8_000) }]
          : ['external', { i: index }];
  const result = await serviceCall<{ startTask: { id: string } }>(START, {
    input: { kind, input, userId: user, idempotencyKey: `soak-${options.seed}-${index}` },
  });
  const id = result.data?.startTask.id;
  if (!id) {
    startFailures.push(`task #${index} (${plan}) for ${user}: ${result.code ?? 'no data'}`);
    return;
  }
  started.set(id, { id, user, plan });
  const later = (ms: number, action: () => Promise<unknown>) => {
    const done: Promise<void> = delay(ms)
      .then(action)
      .then(() => undefined)
      .finally(() => followUps.delete(done));
    followUps.add(done);
  };
  if (plan === 'cancel') {
    later(between(200, 2_000), () =>
      serviceCall(`mutation($id: ID!) { cancelTask(id: $id) { id } }`, { id }),
    );
  } else if (plan === 'external-complete') {
    later(between(100, 1_500), () =>
      serviceCall(`mutation($id: ID!, $r: JSON) { completeTask(id: $id, result: $r) { id } }`, {
        id,
        r: { ok: index },
      }),
    );
  } else if (plan === 'external-fail') {
    later(between(100, 1_500), () =>
      serviceCall(`mutation($id: ID!) { failTask(id: $id, message: "soak failure", code: "SOAK") { id } }`, {
        id,
      }),
    );
  }
}

export function choosePlan(): Plan {
  const r = rng();
  if (r < 0.3) return 'echo';
  if (r < 0.6) return 'sleep';
  if (r < 0.72) return 'cancel';
  if (r < 0.88) return 'external-complete';
  return 'external-fail';
}

export interface ServerTask {
  id: string;
  status: string;
  finishedAt: string | null;
  attempts: number;
}
const TASKS = `query($userId: ID, $first: Int, $after: String) {
  tasks(userId: $userId, first: $first, after: $after) {
    nodes { id status finishedAt attempts }
    pageInfo { hasNextPage endCursor }
  }
}`;

interface TasksPage {
  tasks: { nodes: ServerTask[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

/** Every task of `user` as the service sees it (bounded: 1000 pages). */
export async function tasksOf(user: string): Promise<ServerTask[] | null> {
  const all: ServerTask[] = [];
  let after: string | null = null;
  for (let page = 0; page < 1_000; page++) {
    const result: { data?: TasksPage } = await serviceCall<TasksPage>(TASKS, {
      userId: user,
      first: 100,
      after,
    });
    if (!result.data) return null;
    all.push(...result.data.tasks.nodes);
    const { hasNextPage, endCursor } = result.data.tasks.pageInfo;
    if (!hasNextPage || endCursor === null) return all;
    after = endCursor;
  }
  return all;
}

export const isFinalStatus = (status: string) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(status);
