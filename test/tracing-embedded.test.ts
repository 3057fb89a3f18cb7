/**
 * Tracing in embedded mode (one process: SQLite, in-process bus and workers): each task's run and
 * delivery join the trace of its own start, never the trace of the request that woke the workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPLETED, type CompletionEvent } from './redis/support.js';
import { type ChildServer, startChildServer } from './utils/child-server.js';
import { waitFor } from './utils/deferred.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from './utils/otlp-receiver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

type Completed = { taskCompleted: CompletionEvent };

const START = `mutation StartTask($kind: String!, $input: JSON) {
  startTask(input: { kind: $kind, input: $input }) { id }
}`;

let receiver: OtlpReceiver;
let gateway: ChildServer;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  gateway = await startChildServer({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
      WORKER_CONCURRENCY: '1',
    },
  });
}, 30_000);

afterAll(async () => {
  gateway?.kill('SIGKILL');
  await gateway?.waitExit();
  await receiver?.close();
});

/** The names from `span` up to its trace's root. */
function ancestry(span: ReceivedSpan): string[] {
  const names = [span.name];
  const find = (id: string) => receiver.spans.find((s) => s.spanId === id && s.traceId === span.traceId);
  for (let parent = find(span.parentSpanId); parent; parent = find(parent.parentSpanId))
    names.push(parent.name);
  return names;
}

describe('tracing in embedded mode', () => {
  it('puts each task run by the in-process workers in the trace of its own startTask, without links to others', async () => {
    const token = await gateway.token('ed');
    const sub = collect<Completed>(createWsClient(gateway.wsUrl, token), COMPLETED, { u: 'ed' });
    await waitFor(
      () => receiver.spans.some((span) => span.name === 'taskCompleted.subscribe'),
      'the subscribe',
    );
    const ids: string[] = [];
    for (const value of [1, 2, 3]) {
      const response = await gateway.gql<{ startTask: { id: string } }>(
        START,
        { kind: 'echo', input: { value } },
        token,
      );
      ids.push(response.data?.startTask.id ?? '');
    }
    await sub.until(3, 'three completions');

    for (const id of ids) {
      const ofTask = (name: string) =>
        waitFor(
          () =>
            receiver.spans.find(
              (span) =>
                span.name === name &&
                span.attributes['task.id'] === id &&
                ancestry(span).at(-1) === 'mutation.StartTask',
            ),
          `${name} of ${id} in its start's trace`,
        );
      const [run, deliver] = await Promise.all([ofTask('task.run'), ofTask('task.deliver')]);
      expect(run.traceId).toBe(deliver.traceId);
      expect(run.links).toEqual([]);
      expect(ancestry(run)).toEqual(['task.run', 'task.start', 'mutation.StartTask']);
    }
    expect(
      new Set(ids.map((id) => receiver.spans.find((s) => s.attributes['task.id'] === id)?.traceId)).size,
    ).toBe(3);
    sub.unsubscribe();
  });
});
