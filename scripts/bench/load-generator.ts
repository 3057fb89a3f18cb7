/**
 * Load generator (a child process of run.ts, driven over stdin/stdout): opens N WebSockets to the
 * system under test, speaking graphql-transport-ws by hand over raw `ws` so that the client side
 * stays cheap, one user per connection (`user-<i>`), each subscribed to `taskCompleted` for its
 * user. Then it records, per step, every stamped event it receives: latency (receive time minus
 * the publisher's send time, same machine clock), distinct events, duplicates, misrouted events.
 */
import WebSocket from 'ws';
import { mintToken } from '../../src/auth/tokens.js';
import {
  BENCH_MARK,
  type LoadGenApi,
  type LoadGenState,
  type OpenArgs,
  type OpenResult,
  type StepReceipt,
  userId,
} from './protocol.js';
import { serveRpc } from './rpc.js';
import { BitSet, DoubleList } from './stats.js';
import { subscribePayloads } from './subscribe-payload.js';
import { nowMs } from './sys.js';

/** The subscription's operation id on every connection (one operation per connection). */
const OPERATION_ID = '1';

/** Receive times are cut into slices this long to tell a stall (a few bad slices) from a slowdown. */
const SLICE_MS = 100;

class StepRecorder {
  readonly latencies = new DoubleList();
  /** Worst latency per slice of receive time. */
  readonly worstBySlice = new Map<number, number>();
  readonly seen = new BitSet();
  received = 0;
  unique = 0;
  duplicates = 0;
  misrouted = 0;
  collected = false;
}

const sockets: WebSocket[] = [];
const steps = new Map<number, StepRecorder>();
let opened = false;
const state = {
  dropped: 0,
  late: 0,
  errorFrames: 0,
  completeFrames: 0,
  otherFrames: 0,
  firstErrorFrame: null as string | null,
  closeCodes: new Map<number, number>(),
};

function recorder(step: number): StepRecorder {
  let found = steps.get(step);
  if (!found) {
    found = new StepRecorder();
    steps.set(step, found);
  }
  return found;
}

function onStamped(index: number, match: RegExpExecArray, receivedAt: number): void {
  const sentAt = Number(match[1]);
  const step = Number(match[2]);
  const n = Number(match[3]);
  const user = Number(match[4]);
  const rec = recorder(step);
  if (rec.collected) {
    state.late++;
    return;
  }
  rec.received++;
  if (user !== index) rec.misrouted++;
  if (rec.seen.testAndSet(n)) {
    rec.duplicates++;
    return;
  }
  rec.unique++;
  const latency = receivedAt - sentAt;
  rec.latencies.push(latency);
  const slice = Math.floor(receivedAt / SLICE_MS);
  if (latency > (rec.worstBySlice.get(slice) ?? -1)) rec.worstBySlice.set(slice, latency);
}

function onOtherFrame(socket: WebSocket, text: string): 'ack' | null {
  let message: { type?: unknown; payload?: unknown };
  try {
    message = JSON.parse(text) as { type?: unknown; payload?: unknown };
  } catch {
    state.otherFrames++;
    return null;
  }
  switch (message.type) {
    case 'connection_ack':
      return 'ack';
    case 'ping':
      socket.send('{"type":"pong"}');
      return null;
    case 'pong':
      return null;
    case 'error':
      state.errorFrames++;
      state.firstErrorFrame ??= text.slice(0, 500);
      return null;
    case 'complete':
      state.completeFrames++;
      state.firstErrorFrame ??= `complete: ${text.slice(0, 200)}`;
      return null;
    default:
      state.otherFrames++;
      return null;
  }
}

async function open({
  url,
  connections,
  concurrency,
  secret,
  timeoutMs,
  subscribeAs,
}: OpenArgs): Promise<OpenResult> {
  if (opened) throw new Error('already opened');
  opened = true;
  // Tokens first, so that minting is not part of the measured time.
  const tokens: (string | null)[] = [];
  for (let i = 0; i < connections; i++) {
    tokens.push(secret === null ? null : await mintToken(secret, userId(i), { expiresIn: '6h' }));
  }
  const payloadOf = subscribePayloads(subscribeAs);
  const openCodes = new Map<number, number>();
  let firstError: string | null = null;
  let subscribed = 0;
  let failed = 0;
  let next = 0;
  let inFlight = 0;
  const started = nowMs();
  let lastSubscribe = started;

  return new Promise<OpenResult>((resolve) => {
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      resolve({
        subscribed,
        failed,
        sentMs: lastSubscribe - started,
        closeCodes: Object.fromEntries([...openCodes].map(([code, count]) => [String(code), count])),
        firstError,
      });
    };
    const timer = setTimeout(() => {
      failed += connections - subscribed - failed;
      firstError ??= `open phase timed out after ${timeoutMs} ms`;
      finish();
    }, timeoutMs);

    const settle = () => {
      inFlight--;
      if (subscribed + failed >= connections) finish();
      else launch();
    };

    const connect = (index: number) => {
      inFlight++;
      const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
      sockets[index] = socket;
      let phase: 'connecting' | 'subscribed' | 'failed' = 'connecting';
      socket.on('open', () => {
        const token = tokens[index];
        socket.send(
          JSON.stringify({
            type: 'connection_init',
            payload: token === null || token === undefined ? {} : { authorization: `Bearer ${token}` },
          }),
        );
      });
      socket.on('message', (data: WebSocket.RawData) => {
        const receivedAt = nowMs();
        const text = data.toString();
        const match = BENCH_MARK.exec(text);
        if (match) {
          onStamped(index, match, receivedAt);
          return;
        }
        if (onOtherFrame(socket, text) === 'ack' && phase === 'connecting') {
          socket.send(
            JSON.stringify({
              id: OPERATION_ID,
              type: 'subscribe',
              payload: payloadOf(index),
            }),
          );
          phase = 'subscribed';
          subscribed++;
          lastSubscribe = nowMs();
          settle();
        }
      });
      socket.on('error', (error: Error) => {
        firstError ??= `connection ${index}: ${error.message}`;
      });
      socket.on('close', (code: number) => {
        if (phase === 'connecting') {
          phase = 'failed';
          failed++;
          openCodes.set(code, (openCodes.get(code) ?? 0) + 1);
          settle();
          return;
        }
        state.dropped++;
        state.closeCodes.set(code, (state.closeCodes.get(code) ?? 0) + 1);
      });
    };

    const launch = () => {
      while (!finished && inFlight < concurrency && next < connections) connect(next++);
    };
    if (connections === 0) finish();
    else launch();
  });
}

async function collect({ step }: { step: number }): Promise<StepReceipt> {
  const rec = recorder(step);
  rec.collected = true;
  return {
    step,
    received: rec.received,
    unique: rec.unique,
    duplicates: rec.duplicates,
    misrouted: rec.misrouted,
    latency: rec.latencies.summary(),
    slices: {
      sliceMs: SLICE_MS,
      count: rec.worstBySlice.size,
      over10ms: [...rec.worstBySlice.values()].filter((worst) => worst > 10).length,
      over50ms: [...rec.worstBySlice.values()].filter((worst) => worst > 50).length,
    },
  };
}

async function close(): Promise<null> {
  for (const socket of sockets) socket?.terminate();
  return null;
}

const api: LoadGenApi = {
  open,
  progress: async ({ step }) => ({ unique: recorder(step).unique }),
  collect,
  cpu: async () => {
    const usage = process.cpuUsage();
    return { cpuMs: (usage.user + usage.system) / 1000 };
  },
  state: async (): Promise<LoadGenState> => ({
    dropped: state.dropped,
    closeCodes: Object.fromEntries([...state.closeCodes].map(([code, count]) => [String(code), count])),
    late: state.late,
    errorFrames: state.errorFrames,
    completeFrames: state.completeFrames,
    otherFrames: state.otherFrames,
    firstErrorFrame: state.firstErrorFrame,
  }),
  close,
};
serveRpc(api);
