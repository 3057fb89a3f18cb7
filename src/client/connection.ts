import { createClient, type Sink, type SubscribePayload, type Client as WsClient } from 'graphql-ws';
import { isOffline, listenToBrowser } from './browser-events.js';
import type { ConnectionState } from './types.js';

/** The members of a WebSocket the connection uses; browsers' `WebSocket` and `ws`'s both fit. */
interface SocketLike {
  readonly readyState: number;
  close(code?: number, reason?: string): void;
}
type SocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

const OPEN = 1;
/** graphql-ws's own code for a socket the client gave up on; it reconnects after it. */
const TERMINATED = 4499;

export interface ConnectionOptions {
  /** ws(s)://host:port/graphql */
  readonly url: string;
  /** `WebSocket` from `ws` on Node < 22; the global one otherwise. */
  readonly webSocketImpl: unknown;
  /** The `connection_init` payload, read again for every connection. */
  readonly connectionParams: () => Promise<Record<string, unknown>>;
  readonly keepAliveMs: number;
  readonly pongTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** How long to wait before retry number `retries` (0-based). */
  readonly retryDelay: (retries: number) => number;
  /**
   * Consecutive connection attempts that may fail (closed or errored before `connection_ack`)
   * before the connection stops for good in state `failed`; a successful connection resets the
   * count. `Infinity`: retry forever.
   */
  readonly maxAttempts: number;
  /** Told once, when {@link maxAttempts} attempts in a row have failed; no attempt follows. */
  readonly onFailed: (attempts: number, lastError: unknown) => void;
  /** Failures no retry hides (e.g. `getToken` throwing). */
  readonly onError: (error: unknown) => void;
}

/** A subscription that lives as long as a socket: opened on each connect, closed on each loss. */
interface Managed {
  readonly open: () => () => void;
  close: (() => void) | null;
}

/**
 * One graphql-ws connection kept up for the life of the client: keep-alive pings with a pong
 * timeout, a connect timeout, retries with backoff (woken early by the browser's `online` and
 * `visibilitychange`; forever, or until `maxAttempts` attempts in a row fail, which ends it in the
 * terminal state `failed`), and a fresh graphql-ws client should one give up on a fatal close.
 *
 * graphql-ws would re-send an interrupted subscription with its original payload; a resumable
 * feed needs the latest cursor instead, so subscriptions registered with {@link manage} are
 * closed when the socket goes and opened again, with fresh variables, when it is back.
 */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #socketImpl: SocketConstructor;
  readonly #managed = new Set<Managed>();
  readonly #stateListeners = new Set<(state: ConnectionState) => void>();
  #client: WsClient;
  #clientId = 0;
  #state: ConnectionState;
  #connected = false;
  #disposed = false;
  /** `maxAttempts` attempts in a row failed: no further attempt is made. */
  #failed = false;
  /** Attempts that ended without `connection_ack` since the last successful connection. */
  #failedAttempts = 0;
  /** The socket graphql-ws created last. */
  #socket: SocketLike | null = null;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #recreateTimer: ReturnType<typeof setTimeout> | undefined;
  #fatalRetries = 0;
  /** Ends the current retry wait early (without reconnecting once disposed). */
  #endWait: (() => void) | null = null;
  readonly #removeBrowserListeners: () => void;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#socketImpl = this.#trackSockets(options.webSocketImpl);
    this.#state = isOffline() ? 'offline' : 'connecting';
    this.#client = this.#createClient();
    this.#removeBrowserListeners = this.#listenToBrowser();
  }

  get state(): ConnectionState {
    return this.#state;
  }

  onStateChange(listener: (state: ConnectionState) => void): () => void {
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /** Hands an operation to the current graphql-ws client (urql's subscription exchange calls this). */
  forward(payload: SubscribePayload, sink: Sink): () => void {
    const dispose = this.#client.subscribe(payload, sink);
    // Not synchronously: graphql-ws counts an operation released twice when the client completes
    // it while handling a `next` that the server's `complete` follows in the same batch, and at a
    // count of zero it closes the socket for good. A macrotask later, either has settled first.
    return () => setTimeout(dispose, 0);
  }

  /**
   * Runs `open` now if connected and again after every reconnect; the function it returns is
   * called when the socket is lost and on release. Returns the release.
   */
  manage(open: () => () => void): () => void {
    const managed: Managed = { open, close: null };
    this.#managed.add(managed);
    if (this.#connected) this.#open(managed);
    return () => {
      if (!this.#managed.delete(managed)) return;
      managed.close?.();
      managed.close = null;
    };
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#removeBrowserListeners();
    for (const managed of this.#managed) managed.close?.();
    this.#managed.clear();
    // A failed connection stays `failed`; everything else it held is already released.
    if (this.#failed) return;
    this.#setState('offline');
    await this.#stop();
  }

  /** Stops graphql-ws: no timer left, no further attempt, the current socket closed. */
  async #stop(): Promise<void> {
    clearTimeout(this.#pongTimer);
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#recreateTimer);
    this.#endWait?.();
    const client = this.#client;
    const socket = this.#socket;
    if (this.#connected) {
      await Promise.resolve(client.dispose()).catch(() => undefined);
      return;
    }
    // graphql-ws's dispose() would wait for the pending attempt to settle, which a cancelled retry
    // wait never does: close the socket being opened (if any) and leave graphql-ws behind.
    void Promise.resolve(client.dispose()).catch(() => undefined);
    if (socket && socket.readyState <= OPEN) socket.close(1000, 'Normal Closure');
  }

  #createClient(): WsClient {
    const { url, keepAliveMs, connectionParams } = this.#options;
    // graphql-ws emits `connecting` from within createClient (lazy: false): events are matched to
    // their client by this number, as the client object does not exist yet.
    const id = ++this.#clientId;
    const current = () => id === this.#clientId && !this.#stopped;
    return createClient({
      url,
      webSocketImpl: this.#socketImpl,
      lazy: false,
      keepAlive: keepAliveMs,
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => true,
      retryWait: (retries) => this.#retryWait(retries),
      connectionParams: async () => {
        // Never resolves once stopped: graphql-ws then opens no further socket.
        if (this.#stopped) await new Promise<never>(() => undefined);
        return connectionParams();
      },
      onNonLazyError: (error) => {
        if (current()) this.#onFatal(error);
      },
      on: {
        connecting: () => {
          if (!current()) return;
          clearTimeout(this.#connectTimer);
          this.#connectTimer = setTimeout(() => {
            if (current()) this.#abandonAttempt();
          }, this.#options.connectTimeoutMs);
        },
        connected: () => {
          if (!current()) return;
          clearTimeout(this.#connectTimer);
          this.#connected = true;
          this.#fatalRetries = 0;
          this.#failedAttempts = 0;
          this.#setState('connected');
          for (const managed of [...this.#managed]) this.#open(managed);
        },
        ping: (received) => {
          if (!current() || received || this.#pongTimer !== undefined) return;
          this.#pongTimer = setTimeout(() => {
            this.#pongTimer = undefined;
            // terminate() (not close()) reports the loss at once: a close handshake with a dead peer hangs.
            if (current()) this.#client.terminate();
          }, this.#options.pongTimeoutMs);
        },
        pong: (received) => {
          if (!current() || !received) return;
          clearTimeout(this.#pongTimer);
          this.#pongTimer = undefined;
        },
        closed: (event) => {
          if (!current()) return;
          const wasConnected = this.#connected;
          this.#onLost();
          if (!wasConnected) this.#onAttemptFailed(event);
        },
      },
    });
  }

  #onLost(): void {
    clearTimeout(this.#pongTimer);
    clearTimeout(this.#connectTimer);
    this.#pongTimer = undefined;
    this.#connected = false;
    for (const managed of this.#managed) {
      managed.close?.();
      managed.close = null;
    }
    if (!this.#stopped) this.#setState(isOffline() ? 'offline' : 'reconnecting');
  }

  get #stopped(): boolean {
    return this.#disposed || this.#failed;
  }

  /** An attempt closed or errored before `connection_ack`: after `maxAttempts` in a row, stop for good. */
  #onAttemptFailed(lastError: unknown): void {
    this.#failedAttempts++;
    if (this.#failedAttempts < this.#options.maxAttempts) return;
    this.#failed = true;
    this.#removeBrowserListeners();
    void this.#stop();
    this.#setState('failed');
    this.#options.onFailed(this.#failedAttempts, lastError);
  }

  #open(managed: Managed): void {
    managed.close?.();
    managed.close = null;
    try {
      managed.close = managed.open();
    } catch (error) {
      this.#options.onError(error);
    }
  }

  /** The attempt got no acknowledgement in time: fail it so graphql-ws retries. */
  #abandonAttempt(): void {
    if (this.#connected) return;
    const socket = this.#socket;
    // Closing a socket that is still opening makes it report an error, which graphql-ws retries;
    // terminate() there would leave `ws` an error event with no listener.
    if (socket?.readyState === OPEN) this.#client.terminate();
    else socket?.close(TERMINATED, 'Terminated');
  }

  /** graphql-ws stopped for good (a close code it deems fatal, or connectionParams threw): start afresh. */
  #onFatal(error: unknown): void {
    if (this.#stopped) return;
    this.#options.onError(error);
    this.#onLost();
    this.#recreateTimer = setTimeout(
      () => {
        this.#recreateTimer = undefined;
        if (!this.#stopped) this.#client = this.#createClient();
      },
      this.#options.retryDelay(this.#fatalRetries++),
    );
  }

  async #retryWait(retries: number): Promise<void> {
    await new Promise<void>((resolve) => {
      // Once stopped, never: graphql-ws then opens no further socket.
      if (this.#stopped) return;
      // Offline, only the browser's `online` event ends the wait.
      const timer = isOffline()
        ? undefined
        : setTimeout(() => this.#endWait?.(), this.#options.retryDelay(retries));
      this.#endWait = () => {
        clearTimeout(timer);
        this.#endWait = null;
        if (!this.#stopped) resolve();
      };
    });
  }

  /** Reconnect now: end a retry wait, or drop a socket that may have died while the page slept. */
  #reconnectNow(dropSocket: boolean): void {
    if (this.#stopped) return;
    if (this.#endWait) this.#endWait();
    else if (this.#recreateTimer !== undefined) {
      clearTimeout(this.#recreateTimer);
      this.#recreateTimer = undefined;
      this.#client = this.#createClient();
    } else if (dropSocket && this.#connected) this.#client.terminate();
  }

  #listenToBrowser(): () => void {
    return listenToBrowser({
      online: () => {
        if (!this.#connected) this.#setState('reconnecting');
        // A network change usually leaves the old socket dead without telling it.
        this.#reconnectNow(true);
      },
      offline: () => {
        if (!this.#connected) this.#setState('offline');
      },
      visible: () => this.#reconnectNow(false),
    });
  }

  /** The WebSocket class to hand graphql-ws, recording each socket it creates. */
  #trackSockets(impl: unknown): SocketConstructor {
    const Base = (impl ?? (globalThis as { WebSocket?: unknown }).WebSocket) as SocketConstructor | undefined;
    if (typeof Base !== 'function') {
      throw new Error(
        'no WebSocket implementation: on Node < 22 pass `webSocketImpl: WebSocket` (from the "ws" package)',
      );
    }
    const record = (socket: SocketLike) => {
      this.#socket = socket;
    };
    return class TrackedWebSocket extends Base {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        record(this);
      }
    };
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    for (const listener of [...this.#stateListeners]) listener(state);
  }
}
