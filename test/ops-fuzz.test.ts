/**
 * Throws random and malformed HTTP requests, WebSocket frames and raw TCP bytes at a server for a
 * bounded count (and at most FUZZ_BUDGET_MS), then checks that it still serves a normal client
 * and that every task started before the fuzzing completed, each delivered once. The seed is
 * random unless FUZZ_SEED is set, and is part of every failure message. Runs against both backends.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { waitFor } from './utils/deferred.js';
import { baseOf, COMPLETED, lastEventCursor, startTask, waitForFinal } from './utils/ops.js';
import { startTestServer, type TestServer } from './utils/tserver.js';
import { collect, createWsClient } from './utils/ws-clients.js';

const SEED = Number(process.env['FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));
const HTTP_REQUESTS = 400;
/** WebSocket frames in all, over as many sockets as it takes (a malformed frame often ends one). */
const WS_FRAMES = 600;
const WS_CONCURRENCY = 8;
const FRAMES_PER_SOCKET = 30;
const TCP_CONNECTIONS = 12;
const FUZZ_BUDGET_MS = 20_000;
/** Close codes a malformed client may earn; 4500 (internal error) or a crash is a server bug. */
const EXPECTED_CLOSES = new Set([
  1000, 1001, 1002, 1005, 1006, 1007, 1009, 4400, 4401, 4403, 4406, 4408, 4409, 4429,
]);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed with FUZZ_SEED. */
function prng(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (max: number) => Math.floor(next() * max);
  const pick = <T>(values: readonly T[]): T => values[int(values.length)] as T;
  const bytes = (length: number) => Buffer.from(Array.from({ length }, () => int(256)));
  const text = (length: number) =>
    Array.from({ length }, () =>
      pick(['{', '}', '[', ']', '"', ':', ',', '\\', 'a', '0', ' ', '\n', 'é', '\u0000', '$', '@']),
    ).join('');
  return { next, int, pick, bytes, text };
}

type Random = ReturnType<typeof prng>;

/** A random JSON value, nested at most `depth` deep. */
function randomJson(random: Random, depth = 3): unknown {
  const kind = random.int(depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return random.next() < 0.5;
    case 2:
      return random.pick([0, -1, 1e308, Number.MAX_SAFE_INTEGER, 3.14]);
    case 3:
      return random.text(random.int(20));
    case 4:
      return random.pick(['', 'subscription', 'connection_init', 'next', '__proto__', 'constructor']);
    case 5:
      return Array.from({ length: random.int(4) }, () => randomJson(random, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: random.int(4) }, () => [
          random.pick([
            'query',
            'variables',
            'id',
            'type',
            'payload',
            'extensions',
            '__proto__',
            random.text(5),
          ]),
          randomJson(random, depth - 1),
        ]),
      );
  }
}

const DOCUMENTS = [
  '{ viewer { userId } }',
  'mutation { startTask(input: { kind: "echo", input: { value: 1 } }) { id } }',
  'mutation { startTask(input: { kind: "nope" }) { id } }',
  'mutation { cancelTask(id: "missing") { id } }',
  'subscription { taskCompleted(userId: "fuzz-owner") { cursor } }',
  'subscription { taskUpdated(id: "missing") { id } }',
  '{ tasks(first: 1000) { edges { node { id } } } }',
  '{ task(id: "") { id } }',
  '{ __schema { types { name } } }',
  'query { viewer { userId } } mutation { cancelTask(id: "x") { id } }',
  '{ viewer { ...F } } fragment F on Viewer { ...F }',
  `{ ${'a: viewer { userId } '.repeat(50)} }`,
  `${'{ tasks { edges { node '.repeat(20)}`,
  '{',
  '',
];

/** One malformed (or occasionally valid) HTTP request. */
function randomRequest(random: Random, url: string, token: string): { url: string; init: RequestInit } {
  const base = new URL(url).origin;
  const authorization = random.pick([
    `Bearer ${token}`,
    'Bearer',
    'Basic Zm9vOmJhcg==',
    `Bearer ${random.text(30)}`,
    '',
  ]);
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const json = (body: string) => ({
    url,
    init: { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body },
  });
  switch (random.int(12)) {
    case 0:
      return json(random.bytes(random.int(2_000)).toString('latin1'));
    case 1:
      return json(
        JSON.stringify({ query: random.pick(DOCUMENTS), variables: randomJson(random) }).slice(
          0,
          random.int(80),
        ),
      );
    case 2:
      return json(JSON.stringify(randomJson(random, 4)));
    case 3:
      return json(
        JSON.stringify({
          query: random.pick(DOCUMENTS),
          variables: randomJson(random),
          extensions: randomJson(random),
        }),
      );
    case 4:
      return json(`${'['.repeat(20_000)}${']'.repeat(20_000)}`);
    case 5:
      return json(
        JSON.stringify(Array.from({ length: random.int(30) }, () => ({ query: random.pick(DOCUMENTS) }))),
      );
    case 6:
      return json('x'.repeat(1_048_576 + random.int(1_000)));
    case 7:
      return {
        url,
        init: {
          method: 'POST',
          headers: {
            ...headers,
            'content-type': random.pick([
              'text/plain',
              'multipart/form-data; boundary=x',
              'application/x-www-form-urlencoded',
              'application/graphql',
              '',
            ]),
          },
          body: random.text(random.int(300)),
        },
      };
    case 8:
      return {
        url: `${url}?query=${encodeURIComponent(random.pick(DOCUMENTS))}&variables=${encodeURIComponent(random.text(20))}`,
        init: { headers },
      };
    case 9:
      return {
        url,
        init: {
          method: random.pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS']),
          headers,
          body: random.pick([null, random.text(50)]),
        },
      };
    case 10:
      return {
        url: `${base}/${random.pick(['metrics', 'readyz', 'healthz', 'graphql/..', '%2e%2e', 'x'.repeat(2_000), random.text(10)])}`,
        init: { headers },
      };
    default:
      return json(
        JSON.stringify({ query: random.pick(DOCUMENTS), operationName: random.pick([null, 'X', 42]) }),
      );
  }
}

/**
 * One graphql-transport-ws frame: malformed a quarter of the time (which ends the socket),
 * otherwise well-formed messages with odd contents.
 */
function randomFrame(random: Random, token: string): string | Buffer {
  if (random.next() < 0.75) {
    return JSON.stringify(
      random.pick([
        { type: 'ping', payload: randomJson(random) },
        { type: 'pong' },
        { type: 'complete', id: String(random.int(8)) },
        {
          type: 'subscribe',
          id: `${random.int(1_000_000)}`,
          payload: { query: random.pick(DOCUMENTS), variables: randomJson(random) },
        },
        {
          type: 'subscribe',
          id: `${random.int(1_000_000)}`,
          payload: {
            query: random.pick(DOCUMENTS),
            extensions: { headers: { Authorization: random.pick([`Bearer ${token}`, 'Bearer junk', 'x']) } },
          },
        },
      ]),
    );
  }
  switch (random.int(10)) {
    case 0:
      return random.bytes(random.int(200));
    case 1:
      return random.text(random.int(200));
    case 2:
      return JSON.stringify(randomJson(random, 4));
    case 3:
      return JSON.stringify({
        type: 'connection_init',
        payload: random.pick([{ authorization: `Bearer ${token}` }, randomJson(random), null]),
      });
    case 4:
      return JSON.stringify({ type: random.pick(['ping', 'pong']), payload: randomJson(random) });
    case 5:
      return JSON.stringify({
        type: 'complete',
        id: random.pick(['x', '', String(random.int(100)), 'a'.repeat(5_000)]),
      });
    case 6:
      return JSON.stringify({
        type: random.pick(['next', 'error', 'connection_ack', 'subscribe', 'start', 'stop']),
        id: String(random.int(5)),
        payload: randomJson(random),
      });
    default:
      return JSON.stringify({
        type: 'subscribe',
        id: random.pick([String(random.int(8)), 'dup', '', 'é'.repeat(100)]),
        payload: {
          query: random.pick(DOCUMENTS),
          variables: randomJson(random),
          ...(random.next() < 0.3
            ? {
                extensions: {
                  headers: { Authorization: random.pick([`Bearer ${token}`, 'Bearer junk', 'x']) },
                },
              }
            : {}),
        },
      });
  }
}

describe(`fuzzing (FUZZ_SEED=${SEED})`, () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it(`survives random HTTP bodies, WebSocket frames and TCP bytes, then serves a normal client and loses no task (seed ${SEED})`, async () => {
    const random = prng(SEED);
    const owner = await server.token('fuzz-owner');
    const fuzzer = await server.token('fuzz-user');
    const after = await lastEventCursor(server, owner);
    const watcher = collect<{ taskCompleted: { cursor: string; task: { id: string; status: string } } }>(
      createWsClient(server.wsUrl, owner),
      COMPLETED,
      { u: 'fuzz-owner', after },
    );
    const before: string[] = [];
    for (let i = 0; i < 12; i++) {
      const [kind, input] = random.pick([
        ['sleep', { ms: 200 + random.int(1_500) }],
        ['echo', { value: i }],
        ['checksum', { text: `fuzz ${i}`, rounds: 20_000 }],
      ] as const);
      before.push((await startTask(server, owner, kind, input)).id);
    }

    const deadline = Date.now() + FUZZ_BUDGET_MS;
    const serverErrors: string[] = [];
    const sent = { requests: 0, answered: 0, frames: 0, sockets: 0 };
    const unexpectedCloses: string[] = [];

    const http = async () => {
      for (let i = 0; i < HTTP_REQUESTS && Date.now() < deadline; i += 8) {
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            const { url, init } = randomRequest(random, server.url, fuzzer);
            sent.requests++;
            try {
              const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
              await response.arrayBuffer();
              sent.answered++;
              if (response.status >= 500)
                serverErrors.push(`${init.method ?? 'GET'} ${url.slice(0, 80)} -> ${response.status}`);
            } catch {
              // A refused oversized body may reset the connection; the final checks say whether the server lived.
            }
          }),
        );
      }
    };

    const ws = async () => {
      const socketRun = async () => {
        const socket = new WebSocket(
          server.wsUrl,
          random.pick(['graphql-transport-ws', 'graphql-transport-ws', 'graphql-ws', 'x']),
        );
        const closed = new Promise<number>((resolve) => {
          socket.on('close', (code) => resolve(code));
          socket.on('error', () => resolve(-1));
        });
        const opened = await new Promise<boolean>((resolve) => {
          socket.once('open', () => resolve(true));
          socket.once('error', () => resolve(false));
        });
        if (!opened) return;
        sent.sockets++;
        if (random.next() < 0.8) {
          socket.send(
            JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${fuzzer}` } }),
          );
        }
        for (
          let i = 0;
          i < FRAMES_PER_SOCKET && socket.readyState === WebSocket.OPEN && Date.now() < deadline;
          i++
        ) {
          socket.send(randomFrame(random, fuzzer));
          sent.frames++;
          await new Promise((resolve) => setTimeout(resolve, random.int(5)));
        }
        if (socket.readyState === WebSocket.OPEN) socket.close(1000);
        const code = await closed;
        if (code !== -1 && !EXPECTED_CLOSES.has(code)) unexpectedCloses.push(String(code));
      };
      await Promise.all(
        Array.from({ length: WS_CONCURRENCY }, async () => {
          while (sent.frames < WS_FRAMES && Date.now() < deadline) await socketRun();
        }),
      );
    };

    const tcp = async () => {
      const { port } = new URL(server.url);
      await Promise.all(
        Array.from({ length: TCP_CONNECTIONS }, async () => {
          const payload = random.pick([
            random.bytes(random.int(4_000)),
            Buffer.from(
              `GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${random.text(8)}\r\n\r\n`,
            ),
            Buffer.from(
              `POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n${random.text(100)}`,
            ),
            Buffer.from(
              `POST /graphql HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${random.text(50)}`,
            ),
          ]);
          await new Promise<void>((resolve) => {
            const socket = net.connect(Number(port), '127.0.0.1', () => {
              socket.write(payload);
              setTimeout(() => socket.destroy(), 50 + random.int(200));
            });
            socket.on('error', () => {});
            socket.on('close', () => resolve());
          });
        }),
      );
    };

    await Promise.all([http(), ws(), tcp()]);
    const context = `(FUZZ_SEED=${SEED}, sent ${JSON.stringify(sent)})`;
    // The budget is generous: reaching it means the server slowed down badly, not that the run was too big.
    expect(sent.requests, `requests sent ${context}`).toBe(HTTP_REQUESTS);
    expect(sent.answered, `requests answered ${context}`).toBeGreaterThan(HTTP_REQUESTS / 2);
    expect(sent.frames, `frames sent ${context}`).toBeGreaterThanOrEqual(WS_FRAMES);
    expect(serverErrors, `HTTP 5xx answers ${context}`).toEqual([]);
    expect(unexpectedCloses, `unexpected close codes ${context}`).toEqual([]);

    // Still alive and ready, and a normal client is served.
    expect((await fetch(`${baseOf(server)}/healthz`)).status).toBe(200);
    expect((await fetch(`${baseOf(server)}/readyz`)).status).toBe(200);
    const probe = await startTask(server, owner, 'echo', { value: 'after the fuzzing' });
    expect((await waitForFinal(server, owner, probe.id)).status).toBe('SUCCEEDED');

    // Every task started before the fuzzing finished and reached the subscriber, once.
    for (const id of before)
      expect((await waitForFinal(server, owner, id)).status, `${id} ${context}`).toBe('SUCCEEDED');
    await waitFor(
      () => [...before, probe.id].every((id) => watcher.values.some((v) => v.taskCompleted.task.id === id)),
      `every completion at the subscriber ${context}`,
    );
    const delivered = watcher.values.map((v) => v.taskCompleted.task.id);
    expect(new Set(delivered).size, `duplicates ${context}`).toBe(delivered.length);
    expect(watcher.errors).toEqual([]);
  }, 90_000);
});
