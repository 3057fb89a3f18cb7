/**
 * A TCP forwarder on its own port that picks the target of each new connection (the soak: a live
 * gateway, so a client whose gateway died lands on another when it reconnects; the tests: one
 * port, or none to refuse), and that can blackhole traffic: bytes are dropped in both directions
 * and no close gets through, so only the WebSocket keep-alive can notice.
 */
import net from 'node:net';

export interface TcpForwarder {
  readonly port: number;
  /** Open connections passing through. */
  readonly open: number;
  /** Drops every byte (and close) from now on, on open and new connections alike. */
  blackhole(): void;
  /** Forwards again; connections that lost bytes meanwhile are cut, their streams being corrupt. */
  heal(): void;
  /** Cuts every open connection at once (a TCP close both ways, no WebSocket close frame). */
  reset(): void;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  lostBytes: boolean;
}

/** `pickTarget` returns the port on 127.0.0.1 for a new connection, or null to refuse it. */
export async function startTcpForwarder(pickTarget: () => number | null): Promise<TcpForwarder> {
  let dropping = false;
  const pairs = new Set<Pair>();
  const server = net.createServer((client) => {
    const target = pickTarget();
    if (target === null) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, '127.0.0.1');
    const pair: Pair = { client, upstream, lostBytes: false };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (dropping) pair.lostBytes = true;
        else to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const cut = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    const onClose = () => {
      if (dropping) pair.lostBytes = true;
      else cut();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    get open() {
      return pairs.size;
    },
    blackhole() {
      dropping = true;
    },
    heal() {
      dropping = false;
      for (const pair of [...pairs]) {
        if (!pair.lostBytes && !pair.client.destroyed && !pair.upstream.destroyed) continue;
        pairs.delete(pair);
        pair.client.destroy();
        pair.upstream.destroy();
      }
    },
    reset() {
      for (const pair of [...pairs]) {
        pairs.delete(pair);
        pair.client.destroy();
        pair.upstream.destroy();
      }
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        for (const { client, upstream } of pairs) {
          client.destroy();
          upstream.destroy();
        }
        pairs.clear();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}
