/**
 * Helpers of the operations suites (test/ops-*.test.ts): Prometheus scraping, a few GraphQL
 * calls, and the fields of graphql-ws messages and errors.
 */
import { z } from 'zod';
import { defineKind } from '../../src/tasks/kinds/kind.js';
import { waitFor } from './deferred.js';
import type { GraphQLResponse } from './tserver.js';

/** Anything that POSTs GraphQL with a token: an in-process test server or a child server. */
export interface GqlTarget {
  readonly url: string;
  gql<T>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
}

/** The origin of a target's `url` (http://127.0.0.1:PORT). */
export function baseOf(target: { readonly url: string }): string {
  return new URL(target.url).origin;
}

/** One sample of a Prometheus text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text format (comments skipped; label values unescaped). */
export function parsePrometheus(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const label of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_all, c: string) =>
        c === 'n' ? '\n' : c,
      );
    }
    const raw = match[4] as string;
    const value =
      raw === '+Inf' ? Number.POSITIVE_INFINITY : raw === '-Inf' ? Number.NEGATIVE_INFINITY : Number(raw);
    samples.push({ name: match[1] as string, labels, value });
  }
  return samples;
}

/** The scraped metrics of a target, with a lookup by name and labels. */
export interface Scrape {
  readonly samples: readonly Sample[];
  readonly contentType: string | null;
  /** The value of the one sample named `name` whose labels include `labels`; 0 when there is none. */
  value(name: string, labels?: Record<string, string>): number;
  /** Whether a sample named `name` exists. */
  has(name: string): boolean;
}

export async function scrape(target: { readonly url: string }): Promise<Scrape> {
  const response = await fetch(`${baseOf(target)}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const samples = parsePrometheus(await response.text());
  const matching = (name: string, labels: Record<string, string>) =>
    samples.filter(
      (sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v),
    );
  return {
    samples,
    contentType: response.headers.get('content-type'),
    value(name, labels = {}) {
      const found = matching(name, labels);
      if (found.length > 1)
        throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value ?? 0;
    },
    has: (name) => samples.some((sample) => sample.name === name),
  };
}

export interface TaskView {
  readonly id: string;
  readonly userId: string;
  readonly kind: string;
  readonly status: string;
  readonly attempts: number;
  readonly result: unknown;
}
const TASK_FIELDS = 'id userId kind status attempts result';

/** Starts a task and returns it; fails the test on an error. */
export async function startTask(
  target: GqlTarget,
  token: string,
  kind: string,
  input: unknown,
): Promise<TaskView> {
  const response = await target.gql<{ startTask: TaskView }>(
    `mutation($kind: String!, $input: JSON) { startTask(input: { kind: $kind, input: $input }) { ${TASK_FIELDS} } }`,
    { kind, input },
    token,
  );
  if (!response.data?.startTask) throw new Error(`startTask failed: ${JSON.stringify(response.errors)}`);
  return response.data.startTask;
}

export async function getTask(target: GqlTarget, token: string, id: string): Promise<TaskView> {
  const response = await target.gql<{ task: TaskView | null }>(
    `query($id: ID!) { task(id: $id) { ${TASK_FIELDS} } }`,
    { id },
    token,
  );
  if (!response.data?.task) throw new Error(`task ${id}: ${JSON.stringify(response.errors)}`);
  return response.data.task;
}

const FINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** Polls until the task reaches a final status. */
export function waitForFinal(target: GqlTarget, token: string, id: string, timeoutMs = 20_000) {
  return waitFor(
    async () => {
      const task = await getTask(target, token, id);
      return FINAL.has(task.status) && task;
    },
    `task ${id} to finish`,
    timeoutMs,
  );
}

export async function lastEventCursor(target: GqlTarget, token: string): Promise<string> {
  const response = await target.gql<{ viewer: { lastEventCursor: string } }>(
    'query { viewer { lastEventCursor } }',
    {},
    token,
  );
  if (!response.data) throw new Error(`viewer: ${JSON.stringify(response.errors)}`);
  return response.data.viewer.lastEventCursor;
}

export const COMPLETED = `subscription($u: ID!, $after: String) {
  taskCompleted(userId: $u, after: $after) { cursor replayed task { id status } }
}`;

/** `extensions` of a GraphQL error (formatted), or `{}`. */
export function extensionsOf(error: unknown): Record<string, unknown> {
  if (typeof error !== 'object' || error === null) return {};
  const extensions = (error as { extensions?: unknown }).extensions;
  return typeof extensions === 'object' && extensions !== null ? (extensions as Record<string, unknown>) : {};
}

/** Errors of a raw graphql-ws `next` (payload.errors) or `error` (payload) message. */
export function messageErrors(message: Record<string, unknown>): unknown[] {
  const payload = message['payload'];
  if (Array.isArray(payload)) return payload;
  if (typeof payload === 'object' && payload !== null) {
    const errors = (payload as { errors?: unknown }).errors;
    if (Array.isArray(errors)) return errors;
  }
  return [];
}

/** A test kind whose result is a string of `size` bytes: large frames from a small input. */
export const blobKind = defineKind({
  name: 'blob',
  description: 'Returns a string of `size` bytes (tests).',
  input: z.strictObject({ size: z.int().min(0).max(4_194_304) }),
  timeoutMs: 10_000,
  attempts: 1,
  backoff: { type: 'fixed', delayMs: 0 },
  async handler({ size }) {
    return 'x'.repeat(size);
  },
});
