/**
 * GraphQL mutations over a handful of WebSockets, graphql-transport-ws spoken by hand over raw `ws`
 * (as the load generator does, so that the client side stays cheap): each socket authenticates with
 * the caller's token in connection_init's payload; each operation is a `subscribe` message answered
 * by `next` (the result) and `complete`, or by `error`.
 */
import WebSocket from 'ws';
import type { GraphQLReply } from './graphql-http.js';

/** How long a socket may take from connect to connection_ack. */
const ACK_TIMEOUT_MS = 10_000;

interface Pending {
  resolve(reply: GraphQLReply): void;
  reject(error: Error): void;
  /** The `next` payload, until `complete` arrives. */
  result: GraphQLReply | null;
}

/** One authenticated socket and the operations awaiting their `complete` on it. */
class MutationSocket {
  readonly #socket: WebSocket;
  readonly #pending = new Map<string, Pending>();
  #closed: string | null = null;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on('message', (data: WebSocket.RawData) => this.#onMessage(data.toString()));
    socket.on('close', (code: number, reason: Buffer) => {
      this.#closed = `socket closed (${code} ${reason.toString()})`;
      for (const pending of this.#pending.values()) pending.reject(new Error(this.#closed));
      this.#pending.clear();
    });
    socket.on('error', () => {});
  }

  /** Connects and waits for connection_ack. */
  static open(url: string, token: string): Promise<MutationSocket> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`no connection_ack within ${ACK_TIMEOUT_MS} ms`));
      }, ACK_TIMEOUT_MS);
      const onAck = (data: WebSocket.RawData) => {
        const text = data.toString();
        if (!text.includes('"connection_ack"')) return;
        clearTimeout(timer);
        socket.off('message', onAck);
        resolve(new MutationSocket(socket));
      };
      socket.on('message', onAck);
      socket.once('open', () =>
        socket.send(
          JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }),
        ),
      );
      socket.once('error', (error: Error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('close', (code: number, reason: Buffer) => {
        clearTimeout(timer);
        reject(new Error(`closed before connection_ack (${code} ${reason.toString()})`));
      });
    });
  }

  execute(id: string, query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
    if (this.#closed) return Promise.reject(new Error(this.#closed));
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, result: null });
      this.#socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
    });
  }

  close(): void {
    this.#socket.close(1000, 'done');
  }

  #onMessage(text: string): void {
    let message: { type?: unknown; id?: unknown; payload?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return;
    }
    if (message.type === 'ping') {
      this.#socket.send('{"type":"pong"}');
      return;
    }
    const pending = typeof message.id === 'string' ? this.#pending.get(message.id) : undefined;
    if (!pending || typeof message.id !== 'string') return;
    if (message.type === 'next') {
      pending.result = message.payload as GraphQLReply;
    } else if (message.type === 'error') {
      this.#pending.delete(message.id);
      pending.resolve({ errors: message.payload as { message: string }[] });
    } else if (message.type === 'complete') {
      this.#pending.delete(message.id);
      pending.resolve(pending.result ?? { errors: [{ message: 'complete without a result' }] });
    }
  }
}

/** Operations spread over a few sockets, in turn. */
export class GraphqlWsClient {
  readonly #sockets: readonly MutationSocket[];
  #next = 0;
  #id = 0;

  private constructor(sockets: readonly MutationSocket[]) {
    this.#sockets = sockets;
  }

  /** Opens `sockets` WebSockets to `url`, each authenticated with `token`. */
  static async open(url: string, token: string, sockets: number): Promise<GraphqlWsClient> {
    const opened = await Promise.all(Array.from({ length: sockets }, () => MutationSocket.open(url, token)));
    return new GraphqlWsClient(opened);
  }

  request(query: string, variables: Record<string, unknown>): Promise<GraphQLReply> {
    const socket = this.#sockets[this.#next++ % this.#sockets.length];
    if (!socket) return Promise.reject(new Error('no socket'));
    return socket.execute(String(++this.#id), query, variables);
  }

  close(): void {
    for (const socket of this.#sockets) socket.close();
  }
}
