/**
 * The fleet of SDK clients: one or two per user, each behind its own TCP proxy that re-targets a
 * live gateway on reconnect (and can blackhole traffic), each recording every completion it gets.
 */
import { WebSocket } from 'ws';
import { mintToken } from '../../src/auth/tokens.js';
import {
  type CursorStore,
  createMemoryCursorStore,
  createTaskClient,
  type TaskClient,
  type TaskCompletedEvent,
} from '../../src/client/index.js';
import { startTcpForwarder, type TcpForwarder } from '../lib/tcp-forwarder.js';
import { fleet, livePorts, SECRET } from './fleet.js';
import { post } from './service-calls.js';

const KEEPALIVE_MS = 1_000;
export const PONG_TIMEOUT_MS = 3_000;
/** A short-lived token (the token-expiry fault) lives this many seconds. */
export const SHORT_TOKEN_S = 2;

export interface Delivery {
  readonly id: string;
  readonly status: string;
  readonly cursor: string;
  readonly finishedAt: number;
  readonly at: number;
  readonly replayed: boolean;
}

export interface Slot {
  readonly name: string;
  readonly user: string;
  readonly preferred: number;
  readonly cursorStore: CursorStore;
  proxy: TcpForwarder;
  client: TaskClient | null;
  state: 'normal' | 'asleep' | 'blackholed';
  readonly sleeps: { from: number; to: number }[];
  readonly received: Delivery[];
  readonly counts: Map<string, number>;
  /** The next token minted is short-lived (the token-expiry fault). */
  shortNext: boolean;
  /** When the last short-lived token was minted. */
  shortMintedAt: number | null;
  /** Tokens minted after a short-lived one expired: the refreshes the fault asked for. */
  refreshesAfterExpiry: number;
}

export const slots: Slot[] = [];

export const clientErrors = new Map<string, number>();
function noteClientError(error: unknown): void {
  const message = error instanceof Error ? error.message : String(error);
  const key = message.slice(0, 100);
  clientErrors.set(key, (clientErrors.get(key) ?? 0) + 1);
}

export function openClient(slot: Slot): void {
  const client = createTaskClient({
    url: `http://127.0.0.1:${slot.proxy.port}/graphql`,
    userId: slot.user,
    webSocketImpl: WebSocket,
    keepAliveMs: KEEPALIVE_MS,
    pongTimeoutMs: PONG_TIMEOUT_MS,
    connectTimeoutMs: 5_000,
    retry: { minDelayMs: 200, maxDelayMs: 2_000 },
    cursorStore: slot.cursorStore,
    onError: noteClientError,
    getToken: async () => {
      if (slot.shortMintedAt !== null && Date.now() >= slot.shortMintedAt + SHORT_TOKEN_S * 1000) {
        slot.refreshesAfterExpiry++;
        slot.shortMintedAt = null;
      }
      if (slot.shortNext) {
        slot.shortNext = false;
        slot.shortMintedAt = Date.now();
        return mintToken(SECRET, slot.user, { expiresIn: SHORT_TOKEN_S });
      }
      return mintToken(SECRET, slot.user, { expiresIn: '1h' });
    },
  });
  client.onTaskCompleted((event: TaskCompletedEvent) => {
    const { task } = event;
    slot.received.push({
      id: task.id,
      status: task.status,
      cursor: event.cursor,
      finishedAt: task.finishedAt === null ? Number.NaN : Date.parse(task.finishedAt),
      at: Date.now(),
      replayed: event.replayed,
    });
    slot.counts.set(task.id, (slot.counts.get(task.id) ?? 0) + 1);
  });
  slot.client = client;
}

/**
 * Opens the clients of `users` (two for every fourth user), each resuming after the user's newest
 * event as a returning app would.
 */
export async function openClients(users: readonly string[]): Promise<void> {
  for (let u = 0; u < users.length; u++) {
    const user = users[u] ?? '';
    const token = await mintToken(SECRET, user, { expiresIn: '1h' });
    const ports = livePorts();
    const viewer = await post<{ viewer: { lastEventCursor: string | null } }>(
      ports[u % ports.length] ?? 0,
      '{ viewer { lastEventCursor } }',
      {},
      token,
    );
    const seed = viewer.data?.viewer.lastEventCursor ?? null;
    const copies = u % 4 === 0 ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const cursorStore = createMemoryCursorStore();
      if (seed !== null) await cursorStore.set(user, seed);
      const preferred = slots.length % fleet.gateways.length;
      const slot: Slot = {
        name: `${user}#${c}`,
        user,
        preferred,
        cursorStore,
        proxy: await startTcpForwarder(() => {
          const live = livePorts();
          const mine = fleet.gateways[preferred]?.port;
          if (mine !== undefined && live.includes(mine)) return mine;
          return live.length === 0 ? null : (live[Math.floor(Math.random() * live.length)] ?? null);
        }),
        client: null,
        state: 'normal',
        sleeps: [],
        received: [],
        counts: new Map(),
        shortNext: false,
        shortMintedAt: null,
        refreshesAfterExpiry: 0,
      };
      slots.push(slot);
      openClient(slot);
    }
  }
}

/** Disposes every client and closes its proxy. */
export async function closeClients(): Promise<void> {
  await Promise.all(
    slots.map(async (slot) => {
      await slot.client?.dispose().catch(() => undefined);
      await slot.proxy.close();
    }),
  );
}
