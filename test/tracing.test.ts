/**
 * OpenTelemetry traces across processes: gateway A (no workers) starts a task, a worker process
 * runs it, gateway B (no workers) delivers its completion over graphql-ws; every process exports
 * to an in-memory OTLP/HTTP JSON receiver, and the spans must form one trace. Needs Redis: skipped
 * without it, except in CI (CI=true), where its absence fails.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisKeys } from '../src/backends/redis/keys.js';
import { readTracingSettings } from '../src/observability/tracing.js';
import {
  COMPLETED,
  type CompletionEvent,
  cancelTask,
  numsub,
  startTask,
  waitForTask,
} from './redis/support.js';
import {
  type ChildProcessHandle,
  type ChildServer,
  spawnChild,
  startChildServer,
  startChildWorker,
} from './utils/child-server.js';
import { waitFor } from './utils/deferred.js';
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from './utils/otlp-receiver.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from './utils/redis.js';
import { collect, createWsClient } from './utils/ws-clients.js';

type Completed = { taskCompleted: CompletionEvent };

async function redisAnswers(): Promise<boolean> {
  const redis = new Redis(TEST_REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
  });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

const withRedis = process.env['CI'] === 'true' || (await redisAnswers());

const START = `mutation StartTask($kind: String!, $input: JSON) {
  startTask(input: { kind: $kind, input: $input }) { id status }
}`;

/** Every span of `traceId` by span id. */
function byId(spans: readonly ReceivedSpan[], traceId: string): Map<string, ReceivedSpan> {
  return new Map(spans.filter((span) => span.traceId === traceId).map((span) => [span.spanId, span]));
}

/** The names from `span` up to its trace's root (within the spans received). */
function ancestry(span: ReceivedSpan, spans: Map<string, ReceivedSpan>): string[] {
  const names = [span.name];
  for (let parent = spans.get(span.parentSpanId); parent; parent = spans.get(parent.parentSpanId)) {
    names.push(parent.name);
  }
  return names;
}

/** The JSON log lines of a child's stderr. */
function logLines(handle: ChildProcessHandle): Record<string, unknown>[] {
  return handle
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('tracing settings', () => {
  it('is off without an OTEL_* variable asking for traces, and with OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED', () => {
    expect(readTracingSettings({})).toBeNull();
    expect(readTracingSettings({ OTEL_TRACES_SAMPLER: 'always_on' })).toBeNull();
    expect(
      readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }),
    ).toBeNull();
    expect(
      readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }),
    ).toBeNull();
  });

  it('samples by parent-based ratio with OTEL_TRACES_SAMPLER=parentbased_traceidratio', () => {
    expect(
      readTracingSettings({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.1',
      }),
    ).toMatchObject({
      exporter: 'otlp',
      protocol: 'http/protobuf',
      sampler: { parentBased: true, ratio: 0.1 },
    });
  });

  it.each([
    [{ OTEL_TRACES_SAMPLER: 'sometimes' }, 'OTEL_TRACES_SAMPLER'],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' }, 'OTEL_TRACES_SAMPLER_ARG'],
    [{ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }, 'OTEL_EXPORTER_OTLP_PROTOCOL'],
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER'],
  ])('refuses %j naming %s', (env, variable) => {
    expect(() => readTracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', ...env })).toThrow(
      expect.objectContaining({ name: 'ConfigError', variable }),
    );
  });

  it('stops a gateway at start-up, exit code 2, on a bad OTEL_TRACES_SAMPLER', async () => {
    const child = await spawnChild({
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'sometimes' },
    });
    expect((await child.waitExit()).code).toBe(2);
    expect(child.stderr()).toContain('Configuration error: OTEL_TRACES_SAMPLER');
  });
});

describe.skipIf(!withRedis)('one trace per task across two gateways and a worker process', () => {
  const prefix = uniquePrefix();
  const keys = new RedisKeys(prefix);
  let receiver: OtlpReceiver;
  let redis: Redis;
  let gatewayA: ChildServer;
  let gatewayB: ChildServer;
  let worker: ChildProcessHandle;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 });
    const env = {
      REDIS_URL: TEST_REDIS_URL,
      REDIS_KEY_PREFIX: prefix,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    };
    [gatewayA, gatewayB, worker] = await Promise.all([
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '0', LOG_LEVEL: 'debug' } }),
      startChildServer({ env: { ...env, WORKER_CONCURRENCY: '0' } }),
      startChildWorker({ env: { ...env, WORKER_CONCURRENCY: '1' } }),
    ]);
  }, 60_000);

  afterAll(async () => {
    for (const handle of [gatewayA, gatewayB, worker]) handle?.kill('SIGKILL');
    await Promise.all([gatewayA, gatewayB, worker].map((handle) => handle?.waitExit()));
    redis?.disconnect();
    await receiver?.close();
    await deletePrefix(TEST_REDIS_URL, prefix);
  });

  it('joins startTask on A, the queue wait and run on the worker, each transition and the delivery on B into one trace', async () => {
    const token = await gatewayB.token('tia');
    const sub = collect<Completed>(createWsClient(gatewayB.wsUrl, token), COMPLETED, { u: 'tia' });
    await waitFor(async () => (await numsub(redis, keys.live('tia'))) === 1, 'gateway B listening for tia');

    const response = await gatewayA.gql<{ startTask: { id: string } }>(
      START,
      { kind: 'echo', input: { value: 'traced' } },
      token,
    );
    const taskId = response.data?.startTask.id;
    expect(response.errors).toBeUndefined();
    await sub.until(1, 'the completion on gateway B');
    expect(sub.values[0]?.taskCompleted.task).toMatchObject({ id: taskId, status: 'SUCCEEDED' });

    const pid = (handle: ChildProcessHandle) => handle.child.pid;
    const deliver = await waitFor(
      () =>
        receiver.spans.find((span) => span.name === 'task.deliver' && span.attributes['task.id'] === taskId),
      'the task.deliver span',
    );
    const traceId = deliver.traceId;
    // Every span of the path, from all three processes, arrives in that one trace.
    const trace = await waitFor(() => {
      const spans = byId(receiver.spans, traceId);
      const names = [...spans.values()].map((span) => span.name);
      const run = [...spans.values()].find((span) => span.name === 'task.run');
      const complete =
        ['mutation.StartTask', 'task.start', 'task.queued'].every((name) => names.includes(name)) &&
        names.filter((name) => name === 'task.transition').length >= 3 &&
        run !== undefined &&
        ancestry(run, spans).at(-1) === 'mutation.StartTask';
      return complete && spans;
    }, 'the whole trace');
    const spans = [...trace.values()];
    const one = (name: string) => {
      const found = spans.filter((span) => span.name === name);
      expect(found, name).toHaveLength(1);
      return found[0] as ReceivedSpan;
    };

    const operation = one('mutation.StartTask');
    const start = one('task.start');
    const run = one('task.run');
    const queued = one('task.queued');
    expect(operation.resource['process.pid']).toBe(pid(gatewayA));
    expect(start.parentSpanId).toBe(operation.spanId);
    expect(run.resource['process.pid']).toBe(pid(worker));
    expect(queued.resource['process.pid']).toBe(pid(worker));
    // The run hangs off BullMQ's process span (bullmq-otel), which hangs off its add on A.
    expect(ancestry(run, trace)[0]).toBe('task.run');
    expect(ancestry(run, trace).slice(-2)).toEqual(['task.start', 'mutation.StartTask']);
    expect(ancestry(queued, trace)).toEqual(['task.queued', 'task.start', 'mutation.StartTask']);
    expect(run.attributes).toMatchObject({
      'task.id': taskId,
      'task.attempt': 1,
      'task.outcome': 'succeeded',
    });

    const transitions = spans.filter((span) => span.name === 'task.transition');
    const byStatus = (status: string) =>
      transitions.find((span) => span.attributes['task.status'] === status);
    // Created on A inside the start; claimed and finished by the worker, the finish inside the run.
    expect(byStatus('QUEUED')?.parentSpanId).toBe(start.spanId);
    expect(byStatus('QUEUED')?.resource['process.pid']).toBe(pid(gatewayA));
    expect(byStatus('RUNNING')?.resource['process.pid']).toBe(pid(worker));
    expect(byStatus('SUCCEEDED')?.parentSpanId).toBe(run.spanId);

    expect(deliver.resource['process.pid']).toBe(pid(gatewayB));
    expect(ancestry(deliver, trace)).toEqual(['task.deliver', 'task.start', 'mutation.StartTask']);
    expect(deliver.attributes).toMatchObject({ 'delivery.replayed': false, 'task.status': 'SUCCEEDED' });
    expect(deliver.attributes['connection.id']).toEqual(expect.stringMatching(/.+/));

    // The subscription's start is a span of its own on B, with its replay length and cursor.
    const subscribed = receiver.spans.find(
      (span) => span.name === 'taskCompleted.subscribe' && span.attributes['task.user_id'] === 'tia',
    );
    expect(subscribed?.resource['process.pid']).toBe(pid(gatewayB));
    expect(subscribed?.attributes).toMatchObject({
      'subscription.replay_length': 0,
      'subscription.cursor': '',
    });

    // BullMQ's upkeep (its stalled-job check at the worker's start and every interval) is not traced.
    expect(
      receiver.spans.filter((span) => /^(startStalledCheckTimer|moveStalledJobsToWait) /.test(span.name)),
    ).toEqual([]);

    // A's log line of the start carries the trace's id.
    const started = logLines(gatewayA).find(
      (line) => line['msg'] === 'task started' && line['taskId'] === taskId,
    );
    expect(started).toMatchObject({ trace_id: traceId, span_id: start.spanId });
    sub.unsubscribe();
  });

  it("continues the caller's trace when the startTask request carries a W3C traceparent", async () => {
    const callerTrace = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    const response = await fetch(gatewayA.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await gatewayA.token('wes')}`,
        traceparent: `00-${callerTrace}-${callerSpan}-01`,
      },
      body: JSON.stringify({ query: START, variables: { kind: 'echo', input: { value: 'continued' } } }),
    });
    const { data } = (await response.json()) as { data?: { startTask: { id: string } } };
    const taskId = data?.startTask.id;
    expect(taskId).toEqual(expect.any(String));

    const run = await waitFor(
      () => receiver.spans.find((span) => span.name === 'task.run' && span.attributes['task.id'] === taskId),
      'the run span',
    );
    expect(run.traceId).toBe(callerTrace);
    const operation = await waitFor(
      () => receiver.spans.find((span) => span.traceId === callerTrace && span.name === 'mutation.StartTask'),
      'the operation span',
    );
    expect(operation.parentSpanId).toBe(callerSpan);
  });

  it('records the cancellation of a running task as events of its run, and links the cancel transition to the cancelTask operation', async () => {
    const token = await gatewayA.token('vic');
    const task = await startTask(gatewayA, token, 'sleep', { ms: 120_000 });
    await waitForTask(gatewayA, token, task.id, (t) => t.status === 'RUNNING', 'to be RUNNING');
    await cancelTask(gatewayA, token, task.id);

    const ofTask = (name: string) =>
      receiver.spans.find((span) => span.name === name && span.attributes['task.id'] === task.id);
    const run = await waitFor(() => ofTask('task.run'), 'the run span');
    expect(run.attributes['task.outcome']).toBe('cancelled');
    expect(run.events).toEqual(expect.arrayContaining(['task.abort', 'task.cancelled']));

    const cancel = await waitFor(
      () =>
        receiver.spans.find(
          (span) =>
            span.name === 'task.transition' &&
            span.attributes['task.id'] === task.id &&
            span.attributes['task.status'] === 'CANCELLED',
        ),
      'the CANCELLED transition span',
    );
    // In the task's trace; the cancelTask operation, a trace of its own, is linked.
    expect(cancel.traceId).toBe(run.traceId);
    expect(cancel.resource['process.pid']).toBe(gatewayA.child.pid);
    const [link] = cancel.links;
    const operation = await waitFor(
      () => receiver.spans.find((span) => `${span.traceId}/${span.spanId}` === link),
      'the linked operation span',
    );
    expect(operation.name).toBe('mutation.anonymous');
    expect(operation.traceId).not.toBe(run.traceId);
  });

  it('exports nothing and logs no trace_id from a gateway with tracing off (OTEL_TRACES_EXPORTER=none)', async () => {
    const off = await startChildServer({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
        OTEL_TRACES_EXPORTER: 'none',
        LOG_LEVEL: 'debug',
      },
    });
    const token = await off.token('uma');
    const untraced = await startTask(off, token, 'echo', { value: 'not traced' });
    await waitFor(() => logLines(off).some((line) => line['taskId'] === untraced.id), 'its log line');
    // A traced start on A after it: once its spans are in, anything the untraced gateway exported
    // before would have had the same time to arrive.
    const marker = await startTask(gatewayA, await gatewayA.token('uma'), 'echo', { value: 'marker' });
    await waitFor(
      () =>
        receiver.spans.some((span) => span.name === 'task.run' && span.attributes['task.id'] === marker.id),
      'the marker task.run span',
    );

    expect(receiver.spans.filter((span) => span.resource['process.pid'] === off.child.pid)).toEqual([]);
    expect(logLines(off).filter((line) => 'trace_id' in line)).toEqual([]);
    off.kill('SIGKILL');
    await off.waitExit();
  });
});
