import net from 'node:net';
import { afterAll } from 'vitest';

/** A TCP forwarder that can stop passing bytes on while keeping every connection open. */
export interface TcpProxy {
  readonly port: number;
  /** Drops every byte in either direction from now on, on open and new connections alike. */
  blackhole(): void;
  /** Cuts every new connection at once, as a server that is down would (open ones are kept). */
  refuse(): void;
  /** Forwards again; connections that lost bytes meanwhile are cut, since their streams are corrupt. */
  restore(): void;
  close(): Promise<void>;
}

const proxies = new Set<TcpProxy>();
afterAll(async () => {
  await Promise.all([...proxies].map((proxy) => proxy.close()));
});

/** Listens on a free port and forwards each connection to 127.0.0.1:`targetPort`; closed after the file. */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  let dropping = false;
  let refusing = false;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket; lostBytes: boolean }>();
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream, lostBytes: false };
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk) => {
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
    // A closing end is a message too: while blackholed it does not get through either.
    const onClose = () => {
      if (dropping) pair.lostBytes = true;
      else cut();
    };
    client.on('close', onClose);
    upstream.on('close', onClose);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  let closed: Promise<void> | undefined;
  const proxy: TcpProxy = {
    port: address.port,
    blackhole() {
      dropping = true;
    },
    refuse() {
      refusing = true;
    },
    restore() {
      dropping = false;
      refusing = false;
      for (const pair of [...pairs]) {
        if (!pair.lostBytes) continue;
        pairs.delete(pair);
        pair.client.destroy();
        pair.upstream.destroy();
      }
    },
    close() {
      proxies.delete(proxy);
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
  proxies.add(proxy);
  return proxy;
}
