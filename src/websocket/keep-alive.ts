import type { WebSocket } from 'ws';

/** Ticks per keep-alive period: with 10,000 sockets and 12 s, 42 pings every 50 ms. */
const KEEPALIVE_TICKS = 240;
const MIN_KEEPALIVE_TICK_MS = 10;

/**
 * Pings every socket once per period, from one timer for all; a socket that has not answered the
 * previous ping by its next one is terminated. No timer or closure per socket. The sockets are
 * spread over {@link KEEPALIVE_TICKS} ticks per period, so that a tick's pings (and the pongs they
 * bring back) are a few dozen writes, not a burst that delays the events queued behind it.
 */
export class KeepAlive {
  readonly #buckets: Set<WebSocket>[];
  readonly #bucketOf = new WeakMap<WebSocket, Set<WebSocket>>();
  readonly #awaitingPong = new WeakSet<WebSocket>();
  readonly #timer: NodeJS.Timeout;
  /** One listener for every socket: ws calls it with the socket as `this`. */
  readonly #onPong: (this: WebSocket) => void;
  #tick = 0;
  #next = 0;

  constructor(periodMs: number) {
    const awaitingPong = this.#awaitingPong;
    this.#onPong = function (this: WebSocket) {
      awaitingPong.delete(this);
    };
    const tickMs = Math.max(MIN_KEEPALIVE_TICK_MS, periodMs / KEEPALIVE_TICKS);
    this.#buckets = Array.from({ length: Math.max(1, Math.round(periodMs / tickMs)) }, () => new Set());
    this.#timer = setInterval(() => this.#ping(), tickMs);
    this.#timer.unref();
  }

  add(socket: WebSocket): void {
    const bucket = this.#buckets[this.#next++ % this.#buckets.length] as Set<WebSocket>;
    bucket.add(socket);
    this.#bucketOf.set(socket, bucket);
    socket.on('pong', this.#onPong);
  }

  remove(socket: WebSocket): void {
    this.#bucketOf.get(socket)?.delete(socket);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #ping(): void {
    const bucket = this.#buckets[this.#tick++ % this.#buckets.length] as Set<WebSocket>;
    for (const socket of bucket) {
      if (socket.readyState !== socket.OPEN) continue;
      if (this.#awaitingPong.has(socket)) {
        bucket.delete(socket);
        socket.terminate();
        continue;
      }
      this.#awaitingPong.add(socket);
      socket.ping();
    }
  }
}
