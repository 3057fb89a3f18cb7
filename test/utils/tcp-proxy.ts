import { afterAll } from 'vitest';
import { startTcpForwarder } from '../../scripts/lib/tcp-forwarder.js';

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
  let refusing = false;
  const forwarder = await startTcpForwarder(() => (refusing ? null : targetPort));
  const proxy: TcpProxy = {
    port: forwarder.port,
    blackhole: () => forwarder.blackhole(),
    refuse() {
      refusing = true;
    },
    restore() {
      refusing = false;
      forwarder.heal();
    },
    close() {
      proxies.delete(proxy);
      return forwarder.close();
    },
  };
  proxies.add(proxy);
  return proxy;
}
