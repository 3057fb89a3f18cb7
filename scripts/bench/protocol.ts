/** What the orchestrator (run.ts) asks of its load generator and publisher processes. */
import type { LatencySummary } from './stats.js';
import { nowMs } from './sys.js';

/** The subscription every load-generator connection runs (one per connection, one user each). */
export const SUBSCRIPTION_QUERY =
  'subscription Bench($u: ID!) { taskCompleted(userId: $u) { cursor replayed task { id status result finishedAt } } }';

/**
 * What each load-generator connection subscribes with:
 * - `bench`: {@link SUBSCRIPTION_QUERY}, the bench's own text;
 * - `sdk-text`: the SDK's `TaskCompleted` document (every field of the task), as text;
 * - `sdk-hash`: the same document by its trusted-document hash (`extensions.persistedQuery`, empty
 *   `query`), as the SDK sends it.
 */
export type SubscribeAs = 'bench' | 'sdk-text' | 'sdk-hash';

export const SUBSCRIBE_AS: readonly SubscribeAs[] = ['bench', 'sdk-text', 'sdk-hash'];

/** User id of connection `index`. */
export const userId = (index: number) => `user-${index}`;

/**
 * Each benchmark event carries this object as its task result (fan-out) or echo value (end to end):
 * `t` send time (epoch ms, sub-ms), `s` step, `n` event number within the step, `u` user index.
 * The load generator finds it in a frame with {@link BENCH_MARK} rather than parsing the whole frame.
 */
export type BenchStamp = {
  readonly t: number;
  readonly s: number;
  readonly n: number;
  readonly u: number;
};

export const BENCH_MARK = /"bench":\{"t":([0-9.e+-]+),"s":(\d+),"n":(\d+),"u":(\d+)\}/;

/** The stamp of event `n` of step `s` for user `u`, sent now. */
export const stamp = (s: number, n: number, u: number): { bench: BenchStamp } => ({
  bench: { t: nowMs(), s, n, u },
});

/**
 * How the end-to-end phase starts the service's echo tasks, always as a service caller:
 * - `http`: one `startTask` per HTTP POST;
 * - `ws`: one `startTask` per graphql-ws `subscribe` over a few sockets authenticated at connection_init;
 * - `bulk`: `startTasks` of {@link BULK_INPUTS} inputs per HTTP POST.
 * The baseline has one way: its plain `POST /tasks`.
 */
export type E2eTransport = 'http' | 'ws' | 'bulk';

export const E2E_TRANSPORTS: readonly E2eTransport[] = ['http', 'ws', 'bulk'];

/** Inputs per `startTasks` call of the bulk transport. */
export const BULK_INPUTS = 100;

/** WebSockets the `ws` transport spreads its mutations over. */
export const E2E_WS_SOCKETS = 4;

export interface CpuUsage {
  /** user + system CPU of the process so far, ms (process.cpuUsage). */
  readonly cpuMs: number;
}

export interface OpenArgs {
  readonly url: string;
  readonly connections: number;
  /** WebSocket handshakes in flight at once. */
  readonly concurrency: number;
  /** HS256 secret to mint one token per user with; `null` sends no token (the baseline ignores it anyway). */
  readonly secret: string | null;
  readonly timeoutMs: number;
  readonly subscribeAs: SubscribeAs;
}

export interface OpenResult {
  /** Connections acknowledged (connection_ack) whose subscribe was sent. */
  readonly subscribed: number;
  readonly failed: number;
  /** From the first connect to the last subscribe sent. */
  readonly sentMs: number;
  readonly closeCodes: Record<string, number>;
  readonly firstError: string | null;
}

export interface StepReceipt {
  readonly step: number;
  /** Frames carrying a bench stamp of this step. */
  readonly received: number;
  /** Distinct event numbers among them. */
  readonly unique: number;
  readonly duplicates: number;
  /** Events that arrived on a connection of another user than the one they were sent for. */
  readonly misrouted: number;
  /** Receive time minus send time, ms. */
  readonly latency: LatencySummary;
  /**
   * Receive time cut into slices: how many had events, and in how many the worst latency passed
   * 10 and 50 ms. A stall shows as a few slow slices, a saturated process as most of them.
   */
  readonly slices: { sliceMs: number; count: number; over10ms: number; over50ms: number };
}

export interface LoadGenState {
  /** Connections closed after they were open. */
  readonly dropped: number;
  readonly closeCodes: Record<string, number>;
  /** Stamped frames that arrived after their step was collected. */
  readonly late: number;
  /** GraphQL `error`/`complete` frames and unstamped `next` frames. */
  readonly errorFrames: number;
  readonly completeFrames: number;
  readonly otherFrames: number;
  readonly firstErrorFrame: string | null;
}

export type LoadGenApi = {
  open(arg: OpenArgs): Promise<OpenResult>;
  /** Distinct events of `step` received so far. */
  progress(arg: { step: number }): Promise<{ unique: number }>;
  /** Summary of `step`; later arrivals of it count as late. */
  collect(arg: { step: number }): Promise<StepReceipt>;
  cpu(arg: null): Promise<CpuUsage>;
  state(arg: null): Promise<LoadGenState>;
  /** Closes every connection. */
  close(arg: null): Promise<null>;
};

/**
 * How the publisher makes events:
 * - `repository`: Redis mode; `RedisRepository.create` + `transition` (the Lua script a worker's
 *   write runs: task hash, XADD to the user's stream, PUBLISH on the user's channel);
 * - `api`: embedded mode, whose store belongs to the server process: `startTask` + `completeTask`
 *   over HTTP with a service token;
 * - `publish`: the baseline; a plain Redis PUBLISH of the frame payload on the user's channel.
 */
export type FanoutPath = 'repository' | 'api' | 'publish';

export interface PublisherInit {
  readonly path: FanoutPath;
  readonly users: number;
  readonly seed: number;
  readonly redisUrl: string | null;
  readonly keyPrefix: string | null;
  readonly eventRetention: number;
  /** http://127.0.0.1:PORT/graphql of the service (the `api` path and end-to-end runs). */
  readonly graphqlUrl: string | null;
  /** http://127.0.0.1:PORT/tasks of the baseline server (its end-to-end runs). */
  readonly baselineJobsUrl: string | null;
  readonly secret: string | null;
}

export interface PrepareResult {
  readonly prepared: number;
  readonly errors: number;
  readonly ms: number;
  readonly firstError: string | null;
}

export interface RunArgs {
  readonly step: number;
  /** `fanout` completes prepared tasks (or publishes); `e2e` starts echo tasks through the API. */
  readonly kind: 'fanout' | 'e2e';
  /** How an `e2e` run starts its tasks (the baseline: always its `POST /tasks`). */
  readonly transport: E2eTransport | null;
  /** Events (fan-out) or tasks (end to end) per second. */
  readonly rate: number;
  readonly durationS: number;
  /** Operations awaiting a reply at most (a bulk call is one operation). */
  readonly maxInFlight: number;
}

export interface RunResult {
  readonly target: number;
  /** Events whose send succeeded (the store accepted the transition / the API answered without error). */
  readonly sent: number;
  /** Events not issued because the publisher fell behind its schedule and ran out of time. */
  readonly notIssued: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** From the first send to the last one issued. */
  readonly issueMs: number;
  /** From the first send to the last reply. */
  readonly elapsedMs: number;
  readonly achievedRate: number;
}

export type PublisherApi = {
  init(arg: PublisherInit): Promise<null>;
  /** Fan-out through the service: creates `count` tasks for random users, completed by the next `run`. */
  prepare(arg: { count: number; maxRate: number }): Promise<PrepareResult>;
  run(arg: RunArgs): Promise<RunResult>;
  close(arg: null): Promise<null>;
};
